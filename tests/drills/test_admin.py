"""The drills admin: upcoming calendar, drill page with inlines, "mark done", evidence, plan document and sign-off."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from drills.models import Drill, DrillEvidence, Finding, PlanDocument, PlanReview, TestActivity

pytestmark = pytest.mark.django_db


@pytest.fixture
def activity(db):
    return TestActivity.objects.create(
        key="failover-test", name="Failover Test", cadence="monthly", starts_at=timezone.now() - timedelta(days=40)
    )


def test_upcoming_lists_overdue_and_next_90_days_by_month(admin_client, activity):
    now = timezone.now()
    late = Drill.objects.create(activity=activity, due_at=now - timedelta(days=3))
    soon = Drill.objects.create(activity=activity, due_at=now + timedelta(days=20))
    Drill.objects.create(activity=activity, due_at=now + timedelta(days=200))
    PlanDocument.objects.create(
        key="plan", title="DR Plan", owner="DevOps", next_review_at=now.date() + timedelta(days=10)
    )

    page = admin_client.get(reverse("admin:drills_drill_upcoming")).content.decode()
    overdue, _, rest = page.partition('class="upcoming-month"')
    assert reverse("admin:drills_drill_change", args=[late.pk]) in overdue
    assert reverse("admin:drills_drill_change", args=[soon.pk]) in rest
    assert f"{(now + timedelta(days=20)):%B %Y}" in rest and "Review: DR Plan v1.0" in page
    assert page.count("Failover Test") == 2  # the one 200 days out is not listed

    changelist = admin_client.get(reverse("admin:drills_drill_changelist") + "?overdue=yes").content.decode()
    assert "(overdue)" in changelist and reverse("admin:drills_drill_upcoming") in changelist


def test_mark_done_goes_through_a_form_and_schedules_the_next(admin_client, activity):
    drill = Drill.objects.create(activity=activity, due_at=timezone.now() - timedelta(days=1))
    response = admin_client.post(
        reverse("admin:drills_drill_changelist"), {"action": "mark_done", "_selected_action": [drill.pk]}
    )
    assert response.status_code == 302
    form_url = response["Location"]
    assert "Failover Test" in admin_client.get(form_url).content.decode()
    response = admin_client.post(
        form_url,
        {"ids": str(drill.pk), "result": "partial", "measured_rto": "00:50:00", "went_badly": "Scaling took 50 min"},
    )
    assert response.status_code == 302
    drill.refresh_from_db()
    assert (drill.status, drill.result, drill.measured_rto) == ("done", "partial", timedelta(minutes=50))
    assert drill.went_badly == "Scaling took 50 min" and drill.performed_by.username == "admin"
    assert activity.drills.filter(status="scheduled", due_at__gt=timezone.now()).exists()


def test_drill_page_shows_findings_and_evidence(admin_client, activity):
    drill = Drill.objects.create(activity=activity, due_at=timezone.now())
    Finding.objects.create(drill=drill, title="Autoscaler limit too low", due_at=timezone.now() - timedelta(days=1))
    evidence = DrillEvidence(drill=drill, description="Grafana screenshot")
    evidence.file.save("scaling.txt", ContentFile(b"replicas 1 -> 4"), save=True)

    page = admin_client.get(reverse("admin:drills_drill_change", args=[drill.pk])).content.decode()
    assert "Autoscaler limit too low" in page and "Grafana screenshot" in page
    download = admin_client.get(reverse("admin:drills_drillevidence_download", args=[evidence.pk]))
    assert b"".join(download.streaming_content) == b"replicas 1 -> 4"
    findings = admin_client.get(reverse("admin:drills_finding_changelist") + "?overdue=yes").content.decode()
    assert "Autoscaler limit too low" in findings and "(overdue)" in findings


def test_plan_document_page_and_sign_off_action(admin_client):
    document = PlanDocument.objects.create(
        key="plan",
        title="DR Plan",
        owner="DevOps",
        last_reviewed_at=date(2026, 1, 17),
        next_review_at=date(2026, 4, 17),
    )
    document.change_log.create(
        date=date(2026, 1, 17), version="1.0", changes="Initial disaster recovery plan", author="Claude"
    )
    review = PlanReview.objects.create(
        document=document, outcome="approved", changes="New contacts", reviewed_at=date(2026, 4, 1)
    )
    page = admin_client.get(reverse("admin:drills_plandocument_change", args=[document.pk])).content.decode()
    assert "Initial disaster recovery plan" in page and "New contacts" in page

    admin_client.post(
        reverse("admin:drills_planreview_changelist"), {"action": "sign_off", "_selected_action": [review.pk]}
    )
    document.refresh_from_db()
    assert document.version == "1.1" and document.change_log.filter(version="1.1", changes="New contacts").exists()
    page = admin_client.get(reverse("admin:drills_plandocument_change", args=[document.pk])).content.decode()
    assert "New contacts" in page and "1.1" in page


def test_admin_lists_render(admin_client, activity):
    for name in ("testactivity", "drill", "finding", "plandocument", "planreview"):
        assert admin_client.get(reverse(f"admin:drills_{name}_changelist")).status_code == 200
        assert admin_client.get(reverse(f"admin:drills_{name}_add")).status_code == 200


@pytest.mark.parametrize(
    ("status", "said"),
    [
        ("done", ["A done drill needs its result.", "A done drill needs the time it was performed."]),
        ("skipped", ["Say why the drill was skipped."]),
    ],
)
def test_an_incomplete_done_or_skipped_drill_is_a_form_error_in_words(admin_client, activity, status, said):
    """Not the raw names of the database constraints (done_drill_has_result, skipped_drill_has_reason)."""
    import html

    drill = Drill.objects.create(activity=activity, due_at=timezone.now())
    form = {
        "activity": activity.pk,
        "due_at_0": "2026-12-01",
        "due_at_1": "10:00:00",
        "status": status,
        "findings-TOTAL_FORMS": "0",
        "findings-INITIAL_FORMS": "0",
        "evidence-TOTAL_FORMS": "0",
        "evidence-INITIAL_FORMS": "0",
    }
    response = admin_client.post(reverse("admin:drills_drill_change", args=[drill.pk]), form)
    page = html.unescape(response.content.decode())
    assert response.status_code == 200
    assert "Constraint" not in page and "_has_" not in page
    for message in said:
        assert message in page
    drill.refresh_from_db()
    assert drill.status == "scheduled"
