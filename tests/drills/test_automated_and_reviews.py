"""The monthly Backup Verification drill runs a real restore test; approving a review bumps the version."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from django.core.exceptions import ValidationError

from backups.models import Objective, Verification
from backups.services import backup, verify
from drills.models import Drill, PlanDocument, PlanReview, TestActivity
from drills.services import automated, reviews, schedule
from drills.tasks import run_due_automated_drills

pytestmark = pytest.mark.django_db


@pytest.fixture
def verification_activity(source_db, local_location, make_target):
    target = make_target("botflow-db", source_db, [local_location])
    Objective.objects.create(name="database", rpo=timedelta(hours=1)).targets.set([target])
    return TestActivity.objects.create(
        key="backup-verification",
        name="Backup Verification",
        cadence="monthly",
        starts_at=datetime(2026, 1, 1, 4, tzinfo=UTC),
        automation="restore_test",
        target=target,
    )


def test_automated_drill_runs_a_real_restore_test_and_records_it(verification_activity, source_db):
    run = backup.execute(backup.start_backup(verification_activity.target, trigger="command"))
    assert run.status == "succeeded", run.error
    drill, _ = schedule.create_occurrence(verification_activity, datetime(2026, 1, 1, 4, tzinfo=UTC))

    drill = automated.perform(drill)

    drill.refresh_from_db()
    assert (drill.status, drill.result, drill.error) == ("done", "pass", "")
    check = drill.verification
    assert check.kind == Verification.Kind.RESTORE_TEST and check.run_id == run.pk and check.ok
    assert drill.measured_rto == timedelta(seconds=check.duration_seconds) and drill.measured_rto > timedelta(0)
    assert drill.target_rpo == timedelta(hours=1) and drill.measured_rpo is not None and drill.rpo_met
    assert "restored in" in drill.went_well and "508" not in drill.went_badly
    counts = {t["name"]: t["restored"] for t in check.tables}
    assert counts["public.messages"] == 508 and counts["public.organizations"] == 3
    # Evidence: a JSON and a Markdown report in the default storage, with the per-table counts.
    files = {e.file.name.rsplit(".", 1)[-1]: e for e in drill.evidence.all()}
    assert set(files) == {"json", "md"}
    with files["json"].file.open("rb") as fh:
        report = json.load(fh)
    assert report["result"] == "pass" and report["targets"][0]["verification"] == check.pk
    assert {t["name"]: t["restored"] for t in report["targets"][0]["tables"]}["public.messages"] == 508
    with files["md"].file.open("rb") as fh:
        assert "| public.messages | 508 | 508 |" in fh.read().decode()
    # The next month's drill is scheduled; performing a finished drill again does nothing.
    assert drill.activity.drills.filter(status="scheduled").count() == 1
    assert automated.perform(drill).verification_id == check.pk


def test_automated_drill_without_a_backup_fails_with_the_reason(verification_activity):
    drill, _ = schedule.create_occurrence(verification_activity, datetime(2026, 1, 1, 4, tzinfo=UTC))
    drill = automated.perform(drill)
    assert (drill.status, drill.result) == ("done", "fail")
    assert "botflow-db has no succeeded backup to restore" in drill.went_badly


def test_a_failing_restore_test_fails_the_drill(verification_activity, source_db):
    run = backup.execute(backup.start_backup(verification_activity.target, trigger="command"))
    artifact = run.artifacts.get()
    path = artifact.url.removeprefix("file://")
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 1
    open(path, "wb").write(bytes(data))
    drill, _ = schedule.create_occurrence(verification_activity, datetime(2026, 1, 1, 4, tzinfo=UTC))
    drill = automated.perform(drill)
    assert (drill.status, drill.result) == ("done", "fail")
    assert drill.verification.status == "failed" and "checksum" in drill.went_badly
    with psycopg.connect(source_db) as conn:  # the live database was never touched
        assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 508


def schedule_restore_test(target):
    """What the backups app's monthly schedule does for one target (here run in-process)."""
    from backups.tasks import verify_backup

    run = backup.execute(backup.start_backup(target, trigger="schedule"))
    assert run.status == "succeeded", run.error
    check = verify.start_verification(run, kind=Verification.Kind.RESTORE_TEST, trigger="schedule")
    return check, lambda: verify_backup(check.pk)


def test_the_scheduled_drill_uses_that_mornings_restore_test_instead_of_restoring_again(verification_activity):
    target = verification_activity.target
    check, finish = schedule_restore_test(target)
    drill, _ = schedule.create_occurrence(verification_activity, datetime(2026, 1, 1, 4, tzinfo=UTC))

    # Still queued: the drill waits (stays scheduled) rather than starting a second restore.
    assert automated.perform(drill).status == "scheduled"
    assert Verification.objects.filter(target=target, kind="restore_test").count() == 1

    finish()
    drill = automated.perform(drill)

    assert (drill.status, drill.result) == ("done", "pass")
    assert drill.verification_id == check.pk
    assert Verification.objects.filter(target=target, kind="restore_test").count() == 1
    assert drill.measured_rto == timedelta(seconds=Verification.objects.get(pk=check.pk).duration_seconds)
    with drill.evidence.get(file__endswith=".md").file.open("rb") as fh:
        assert "reused" in fh.read().decode()


def test_a_failed_restore_test_that_morning_fails_the_drill_too(verification_activity):
    check, finish = schedule_restore_test(verification_activity.target)
    path = check.run.artifacts.get().url.removeprefix("file://")
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 1
    open(path, "wb").write(bytes(data))
    finish()
    drill, _ = schedule.create_occurrence(verification_activity, datetime(2026, 1, 1, 4, tzinfo=UTC))

    drill = automated.perform(drill)

    assert (drill.status, drill.result, drill.verification_id) == ("done", "fail", check.pk)
    assert "checksum" in drill.went_badly


def test_an_older_restore_test_or_a_person_performing_the_drill_gets_a_fresh_one(
    verification_activity, django_user_model
):
    target = verification_activity.target
    check, finish = schedule_restore_test(target)
    finish()
    Verification.objects.filter(pk=check.pk).update(queued_at=check.queued_at - timedelta(hours=25))
    first, _ = schedule.create_occurrence(verification_activity, datetime(2026, 1, 1, 4, tzinfo=UTC))
    assert automated.perform(first).verification_id != check.pk

    second, _ = schedule.create_occurrence(verification_activity, datetime(2026, 2, 1, 4, tzinfo=UTC))
    person = django_user_model.objects.create_user("ic")
    done = automated.perform(second, user=person)
    assert done.verification_id not in (check.pk, first.verification_id)
    assert Verification.objects.filter(target=target, kind="restore_test").count() == 3


def test_due_automated_drills_are_queued_by_the_beat_task(
    verification_activity, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    # Sent when the beat task's transaction commits (drportal.enqueue's policy).
    monkeypatch.setattr(
        "drills.tasks.perform_automated_drill.apply_async", lambda args, **options: queued.append(args[0])
    )
    drill, _ = schedule.create_occurrence(verification_activity, datetime(2026, 1, 1, 4, tzinfo=UTC))
    Drill.objects.create(activity=verification_activity, due_at=datetime(2099, 1, 1, tzinfo=UTC))
    with django_capture_on_commit_callbacks(execute=True):
        assert run_due_automated_drills() == [drill.pk]
    assert queued == [drill.pk]


def test_with_the_broker_down_an_automated_drill_stays_scheduled_and_says_why(
    verification_activity, monkeypatch, django_capture_on_commit_callbacks
):
    from drills.tasks import enqueue_drill
    from drportal.celery import app
    from tests.conftest import free_port

    monkeypatch.setitem(app.conf, "broker_write_url", f"redis://127.0.0.1:{free_port()}/0")
    drill, _ = schedule.create_occurrence(verification_activity, datetime(2026, 1, 1, 4, tzinfo=UTC))
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_drill(drill)
    drill.refresh_from_db()
    assert drill.status == "scheduled" and drill.error.startswith("queue unreachable: ")


@pytest.fixture
def document(db):
    return PlanDocument.objects.create(
        key="botflow-dr-plan",
        title="BotFlow Disaster Recovery Plan",
        version="1.0",
        owner="DevOps Team",
        last_reviewed_at=date(2026, 1, 17),
        next_review_at=date(2026, 4, 17),
    )


def test_approving_a_review_with_changes_bumps_the_version_and_logs_it(document, django_user_model):
    alice = django_user_model.objects.create_user("alice", first_name="Alice", last_name="Reviewer")
    bob = django_user_model.objects.create_user("bob")  # signs off: never the review's own author
    review = PlanReview.objects.create(
        document=document,
        reviewer=alice,
        reviewed_at=date(2026, 4, 14),
        outcome="approved",
        changes="Added the Redis failover runbook",
    )
    reviews.sign_off(review, user=bob)

    document.refresh_from_db()
    assert document.version == "1.1"
    assert (document.last_reviewed_at, document.next_review_at) == (date(2026, 4, 14), date(2026, 7, 14))
    entry = document.change_log.get(version="1.1")
    assert (entry.date, entry.changes, entry.author) == (
        date(2026, 4, 14),
        "Added the Redis failover runbook",
        "Alice Reviewer",
    )
    review.refresh_from_db()
    assert review.signed_off_by == bob and review.version_after == "1.1"
    with pytest.raises(ValidationError, match="already signed off"):
        reviews.sign_off(review, user=bob)

    major = PlanReview.objects.create(
        document=document,
        reviewer_name="Auditor",
        reviewed_at=date(2026, 11, 30),
        outcome="approved",
        changes="Multi-region architecture",
        major=True,
    )
    reviews.sign_off(major, user=alice)
    document.refresh_from_db()
    assert document.version == "2.0" and document.next_review_at == date(2027, 2, 28)  # clamped to month end


def test_no_change_and_changes_needed_reviews(document, django_user_model):
    bob = django_user_model.objects.create_user("bob")
    reviews.sign_off(
        PlanReview.objects.create(document=document, reviewed_at=date(2026, 4, 10), outcome="changes_needed"),
        user=bob,
    )
    document.refresh_from_db()
    assert (
        document.status == "under_review" and document.next_review_at == date(2026, 4, 17) and document.version == "1.0"
    )

    reviews.sign_off(
        PlanReview.objects.create(document=document, reviewed_at=date(2026, 4, 16), outcome="no_change"), user=bob
    )
    document.refresh_from_db()
    assert (document.status, document.version, document.next_review_at) == ("active", "1.0", date(2026, 7, 16))
    assert not document.change_log.exists()

    with pytest.raises(ValidationError, match="what changed"):
        reviews.sign_off(PlanReview.objects.create(document=document, outcome="approved"), user=bob)


def evidence_markdown(drill) -> str:
    evidence = drill.evidence.get(file__endswith=".md")
    with evidence.file.open("rb") as fh:
        return fh.read().decode()


def test_a_failed_automated_drill_names_its_cause_on_the_drill_its_page_and_its_evidence(
    verification_activity, admin_client
):
    """Once shown as error "-" and evidence "Backup run: #None taken None"."""
    from django.urls import reverse

    drill, _ = schedule.create_occurrence(verification_activity, datetime(2026, 1, 1, 4, tzinfo=UTC))
    drill = automated.perform(drill)
    drill.refresh_from_db()
    assert drill.result == "fail"
    assert drill.error == "botflow-db has no succeeded backup to restore"
    page = admin_client.get(reverse("admin:drills_drill_change", args=[drill.pk])).content.decode()
    field = page.split('class="form-row field-error', 1)[1].split('<div class="form-row', 1)[0]
    assert "botflow-db has no succeeded backup to restore" in field
    report = evidence_markdown(drill)
    assert "None" not in report
    assert "- Backup run: no backup run" in report
    assert "- Problem: botflow-db has no succeeded backup to restore" in report


def test_a_drill_whose_restore_test_fails_names_the_failed_check(verification_activity, source_db):
    run = backup.execute(backup.start_backup(verification_activity.target, trigger="command"))
    path = run.artifacts.get().url.removeprefix("file://")
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 1
    open(path, "wb").write(bytes(data))
    drill, _ = schedule.create_occurrence(verification_activity, datetime(2026, 1, 1, 4, tzinfo=UTC))
    drill = automated.perform(drill)
    drill.refresh_from_db()
    assert drill.result == "fail"
    assert drill.error.startswith("botflow-db: ") and "checksum" in drill.error
    assert f"- Backup run: #{run.pk} taken " in evidence_markdown(drill)
