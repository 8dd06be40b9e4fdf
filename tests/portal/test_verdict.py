# ruff: noqa: F811  (the fixtures imported from test_health_safety are used as arguments)
"""The dashboard's verdict line (safe / at risk / not safe, with reasons) says what /health says,
and a fresh install waits calmly for its first backups: no alert storm, no hourly reminders.

Over HTTP with the test client, against the shipped plan.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from alerts.models import Notification
from backups.models import BackupRun, Objective, Target
from backups.services import rpo
from drportal.models import Heartbeat, Probe
from tests.portal.test_health_safety import alive, record_heartbeat, run, safe_now  # noqa: F401

pytestmark = pytest.mark.django_db

LONG_AGO = timezone.now() - timedelta(days=30)


@pytest.fixture
def grace(settings):
    """The shipped first-backup grace (tests/settings.py turns it off for the other tests)."""
    import drportal.settings as shipped

    assert shipped.FIRST_ALERT_GRACE_SECONDS == 26 * 3600
    settings.FIRST_ALERT_GRACE_SECONDS = shipped.FIRST_ALERT_GRACE_SECONDS


def verdict(admin_client) -> tuple[str, str]:
    """(level, text) of the dashboard's verdict card."""
    html = admin_client.get(reverse("admin:index")).content.decode()
    card = r'<section class="dash-card verdict[^"]*" id="dash-verdict" data-verdict="(\w+)">(.*?)</section>'
    match = re.search(card, html, re.S)
    assert match, "no verdict card on the dashboard"
    return match.group(1), re.sub(r"<[^>]+>", "", match.group(2))


@pytest.fixture
def installed_long_ago(plan_applied):  # noqa: F811
    """The shipped plan's objectives, created a month ago: their first-backup grace is long over."""
    Objective.objects.update(created_at=LONG_AGO)


def test_the_verdict_goes_from_not_safe_to_safe_when_the_last_breached_objective_gets_a_verified_backup(
    admin_client,
    client,
    installed_long_ago,
    alive,  # noqa: F811
):
    safe_now()
    database = Target.objects.get(name="database")
    BackupRun.objects.filter(target=database).update(started_at=timezone.now() - timedelta(hours=5))
    rpo.evaluate()

    assert client.get(reverse("health")).status_code == 503
    level, text = verdict(admin_client)
    assert level == "not_safe"
    assert "Not safe" in text and "objective database: breached" in text

    run(database, 5, verified=True)
    rpo.evaluate()

    assert client.get(reverse("health")).status_code == 200
    level, text = verdict(admin_client)
    assert level == "safe", text
    assert text.strip().startswith("Safe") and "breached" not in text


def test_the_verdict_names_every_reason_health_gives(admin_client, client, installed_long_ago, alive):  # noqa: F811
    safe_now()
    run(Target.objects.get(name="portal"), 1, status="failed")
    Heartbeat.objects.exclude(name="beat").delete()
    body = client.get(reverse("health")).json()
    level, text = verdict(admin_client)
    assert level == "not_safe"
    assert body["failing"] == ["queue celery: no live worker", "target portal: newest run failed"]
    for line in body["failing"]:
        assert line in text


def test_soft_problems_make_it_at_risk_not_safe(admin_client, client, installed_long_ago, alive):  # noqa: F811
    safe_now()
    assert verdict(admin_client)[0] == "safe"

    Probe.objects.create(name="api", url="https://api.example.com/health", state="down")
    level, text = verdict(admin_client)
    assert level == "at_risk" and "probe api: down" in text and "At risk" in text
    assert client.get(reverse("health")).status_code == 200  # probes are not /health's business
    Probe.objects.all().delete()

    # Late: past its 1 h RPO but within the 6 min grace. /health still 200, the dashboard says at risk.
    BackupRun.objects.filter(target__name="database").update(started_at=timezone.now() - timedelta(minutes=63))
    rpo.evaluate()
    assert client.get(reverse("health")).status_code == 200
    level, text = verdict(admin_client)
    assert level == "at_risk" and "objective database: late" in text

    # Beat silent: /health fails, but backups already taken are fine: at risk, not "not safe".
    safe_now()
    Heartbeat.objects.filter(name="beat").update(seen_at=timezone.now() - timedelta(hours=1))
    assert client.get(reverse("health")).status_code == 503
    level, text = verdict(admin_client)
    assert level == "at_risk" and "beat" in text


def test_a_fresh_install_waits_for_the_first_backup_without_alerts_or_reminders(
    admin_client,
    client,
    plan_applied,
    alive,
    settings,
    grace,  # noqa: F811
):
    """Today's main: five "RPO BREACHED" alerts at the first evaluation, then hourly reminders."""
    from drills.services import schedule

    settings.ALERT_EMAIL_TO = ["oncall@example.com"]
    now = timezone.now()
    for minutes in (0, 61, 125, 600):  # beat evaluates every minute; reminders would come hourly
        rpo.evaluate(now + timedelta(minutes=minutes))
        # Drills and reviews too: the shipped plan was last reviewed 2026-01-17, so its review is overdue.
        schedule.housekeeping(now + timedelta(minutes=minutes))
    assert Notification.objects.count() == 0
    assert mail.outbox == []

    # /health still says not safe: waiting is not safe (issue #11).
    response = client.get(reverse("health"))
    assert response.status_code == 503
    assert {o["name"] for o in response.json()["checks"]["objectives"]["failing"]} == {
        "configuration",
        "database",
        "files",
        "logs",
        "portal",
    }

    level, text = verdict(admin_client)
    assert level == "waiting"
    assert "waiting for the first backup" in text
    assert "objective logs: waiting for its first ping" in text
    assert "objective database: waiting for its first verified backup" in text
    assert "breached" not in text

    html = admin_client.get(reverse("admin:index")).content.decode()
    logs = html[html.index('data-objective="logs"') :]
    logs = logs[: logs.index("</tr>")]
    assert "waiting for the first ping" in logs and "never fed" in logs
    assert "rpo-state-breached" not in logs
    database = html[html.index('data-objective="database"') :]
    database = database[: database.index("</tr>")]
    assert "waiting for the first backup" in database and "rpo-state-breached" not in database


def test_after_the_grace_period_a_missing_first_backup_is_alerted_once(admin_client, plan_applied, settings):  # noqa: F811
    settings.ALERT_EMAIL_TO = ["oncall@example.com"]
    settings.FIRST_ALERT_GRACE_SECONDS = 3600
    now = timezone.now()
    rpo.evaluate(now)
    assert Notification.objects.count() == 0
    rpo.evaluate(now + timedelta(minutes=61))
    subjects = sorted(set(Notification.objects.values_list("subject", flat=True)))
    names = ["configuration", "database", "files", "logs", "portal"]
    assert subjects == [f"[DR Portal] RPO {name} is BREACHED" for name in names]
    Objective.objects.update(created_at=now - timedelta(minutes=61))  # the dashboard looks at the real now
    level, text = verdict(admin_client)
    assert level == "not_safe" and "objective logs: no verified copy yet" in text


def test_after_the_grace_period_an_overdue_plan_review_is_reminded(plan_applied, grace):  # noqa: F811
    from drills.models import PlanDocument
    from drills.services import schedule

    document = PlanDocument.objects.get(key="botflow-dr-plan")
    assert document.is_review_overdue()
    schedule.housekeeping()
    assert not Notification.objects.filter(event="review_overdue").exists()
    PlanDocument.objects.update(created_at=timezone.now() - timedelta(hours=27))
    schedule.housekeeping()
    subjects = list(Notification.objects.filter(event="review_overdue").values_list("subject", flat=True))
    assert subjects == ["[DR Portal] Plan review overdue: BotFlow Disaster Recovery Plan"]  # the plan's email channel
    assert PlanDocument.objects.get(pk=document.pk).reminded_at is not None


def test_an_objective_that_existed_before_the_upgrade_gets_no_grace(plan_applied, grace):  # noqa: F811
    # The migration dates existing objectives in the past; one created now is new.
    fresh = Objective.objects.get(name="database")
    assert fresh.waiting_for_first_copy(None, timezone.now())
    fresh.created_at = LONG_AGO
    assert not fresh.waiting_for_first_copy(None, timezone.now())
    assert fresh.state_for(None, timezone.now()) == "breached"


def test_failed_drills_overdue_reports_and_read_only_are_on_the_dashboard(admin_client, installed_long_ago, alive):  # noqa: F811
    from django.contrib.auth.models import User

    from drills.models import Drill, TestActivity
    from incidents.models import Incident, Severity
    from incidents.services import security

    safe_now()
    activity = TestActivity.objects.get(key="failover-test")
    Drill.objects.create(
        activity=activity,
        due_at=LONG_AGO,
        status="done",
        result="fail",
        performed_at=timezone.now() - timedelta(days=2),
    )
    commander = User.objects.get(is_superuser=True)
    incident = Incident.open(title="Database lost", severity=Severity.objects.get(key="P1"), user=commander)
    Incident.objects.filter(pk=incident.pk).update(
        status="resolved",
        resolved_at=timezone.now() - timedelta(days=3),
        report_due_at=timezone.now() - timedelta(days=2),
    )
    html = admin_client.get(reverse("admin:index")).content.decode()
    card = html[html.index('id="dash-attention"') :]
    card = card[: card.index("</section>")]
    assert "Failover Test" in card and "failed" in card
    assert "Database lost" in card and "overdue" in card
    assert "read-only" not in card
    level, text = verdict(admin_client)
    assert level == "at_risk" and "drill Failover Test: failed" in text

    security.set_read_only(incident, True, commander)
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "The portal is read-only" in html
    level, text = verdict(admin_client)
    assert level == "not_safe" and "the portal is read-only" in text

    # A later pass of the same test clears the failed drill.
    Drill.objects.create(
        activity=activity,
        due_at=LONG_AGO + timedelta(days=1),
        status="done",
        result="pass",
        performed_at=timezone.now(),
    )
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "Failover Test" not in html[html.index('id="dash-attention"') :].split("</section>")[0]


def test_the_dashboard_refreshes_itself_only_while_a_job_runs(admin_client, installed_long_ago, alive):  # noqa: F811
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert 'http-equiv="refresh"' not in html
    running = BackupRun.objects.create(target=Target.objects.get(name="database"), status="running")
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert '<meta http-equiv="refresh" content="15">' in html
    running.status = "failed"
    running.save()
    assert 'http-equiv="refresh"' not in admin_client.get(reverse("admin:index")).content.decode()


def test_a_viewer_sees_the_verdict(client, installed_long_ago, alive):  # noqa: F811
    from django.contrib.auth.models import User

    from drportal import roles

    record_heartbeat("beat")
    viewer = User.objects.create_user("viewer", password="pw")
    roles.assign(viewer, roles.VIEWER)
    client.force_login(viewer)
    html = client.get(reverse("admin:index")).content.decode()
    assert 'id="dash-verdict"' in html and "Not safe" in html


def test_a_fresh_install_missing_a_variable_waits_and_lists_it_a_target_that_ran_is_not_safe(
    grace,
    plan_applied,
    alive,  # noqa: F811
):
    """First grace: a target that never ran and whose env: variable no worker has is setup still to do (listed,
    the verdict stays "waiting"); once that target has run, the same missing variable is a hard problem."""
    from portal import verdict

    seen = [n for n in Heartbeat.objects.get(name="worker@test").env_names if n != "BOTFLOW_DATABASE_URL"]
    record_heartbeat("worker@test", ["celery"], env_names=seen)
    fresh = verdict.compute()
    assert fresh.level == verdict.WAITING, fresh
    assert (
        "target database: env:BOTFLOW_DATABASE_URL is not set on any live worker of queue celery"
        " (its first backup will fail until it is)"
    ) in fresh.waiting
    assert not fresh.problems

    run(Target.objects.get(name="database"), 20, verified=True)
    ran = verdict.compute()
    assert ran.level == verdict.NOT_SAFE
    assert "target database: env:BOTFLOW_DATABASE_URL is not set on any live worker of queue celery" in ran.problems
