"""Probes against a real local HTTP server: flips to down, alerts, recovers; feeds status components."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.urls import reverse

from alerts import delivery
from alerts.models import Channel, Notification
from drportal.models import Probe, ProbeChange, ProbeResult
from incidents.models import StatusComponent
from portal import probes
from tests.http_stub import Answer, HttpStub

pytestmark = pytest.mark.django_db


class Service:
    """A stand-in BotFlow API: /health answers JSON whose status and redis flag the test controls."""

    def __init__(self, stub: HttpStub) -> None:
        self.status = 200
        self.redis = True
        self.url = stub.url("/health")
        stub.default = lambda request: Answer(self.status, {"status": "ok", "redis": self.redis})


@pytest.fixture
def service(http_stub):
    return Service(http_stub)


def outbox() -> list:
    """The mail sent, once the alerts outbox is delivered here as a worker would (see ``deliver_alerts``)."""
    delivery.deliver_due()
    return mail.outbox


@pytest.fixture
def probe(service, deliver_alerts):
    Channel.objects.create(name="ops", kind="email", email_to="ops@example.com")
    component = StatusComponent.objects.create(name="API")
    return Probe.objects.create(
        name="backend", url=service.url, json_field="redis", component=component, timeout=timedelta(seconds=2)
    )


def test_probe_flips_alerts_and_recovers(service, probe):
    assert probe.failures_before_down == 2  # the default: one blip pages nobody
    assert probes.check(probe).state == "up"
    assert outbox() == []  # first good result is not news

    service.redis = False
    blip = probes.check(probe)
    assert blip.state == "up" and blip.last_error == '"redis" is false, expected true'
    assert outbox() == []

    service.redis, service.status = True, 500
    down = probes.check(probe)
    assert down.state == "down" and down.last_error == "HTTP 500, expected 200"
    assert StatusComponent.objects.get().state == "major"
    assert outbox()[-1].subject == "[DR Portal] backend is DOWN"
    assert "HTTP 500, expected 200" in outbox()[-1].body

    assert probes.check(probe).state == "down"
    assert len(outbox()) == 1  # still down: no second alert

    service.status = 200
    assert probes.check(probe).state == "up"
    assert outbox()[-1].subject == "[DR Portal] backend is up again"
    assert StatusComponent.objects.get().state == "operational"
    assert [(c.from_state, c.to_state) for c in ProbeChange.objects.order_by("pk")] == [
        ("unknown", "up"),
        ("up", "down"),
        ("down", "up"),
    ]
    assert Notification.objects.filter(event__in=["probe_down", "probe_up"]).count() == 2


def flips(probe) -> list[tuple[str, str]]:
    return [(c.from_state, c.to_state) for c in ProbeChange.objects.filter(probe=probe).order_by("pk")]


def check_many(probe, times: int) -> Probe:
    for _ in range(times):
        probe = probes.check(probe)
    return probe


def test_failures_below_the_threshold_neither_flip_nor_alert(service, probe):
    probe.failures_before_down = 3
    probe.save()
    assert probes.check(probe).state == "up"

    service.status = 503
    failing = check_many(probe, 2)
    assert (failing.state, failing.consecutive_failures) == ("up", 2)
    assert failing.last_error == "HTTP 503, expected 200"  # the blip is visible, just not an alert
    assert outbox() == [] and not Notification.objects.filter(event="probe_down").exists()
    assert StatusComponent.objects.get().state == "operational"
    assert flips(probe) == [("unknown", "up")]
    # Every check is still on record, the failed ones included.
    assert list(ProbeResult.objects.filter(probe=probe).order_by("at", "pk").values_list("ok", flat=True)) == [
        True,
        False,
        False,
    ]


def test_reaching_the_threshold_flips_and_alerts_once(service, probe):
    probe.failures_before_down = 3
    probe.save()
    probes.check(probe)

    service.status = 503
    down = check_many(probe, 3)
    assert (down.state, down.consecutive_failures) == ("down", 3)
    assert StatusComponent.objects.get().state == "major"
    assert [m.subject for m in outbox()] == ["[DR Portal] backend is DOWN"]

    down = check_many(probe, 2)
    assert (down.state, down.consecutive_failures) == ("down", 5)
    assert len(outbox()) == 1
    assert Notification.objects.filter(event="probe_down").count() == 1
    assert flips(probe) == [("unknown", "up"), ("up", "down")]


def test_a_success_in_between_resets_the_count(service, probe):
    probes.check(probe)
    for status in (500, 200, 500, 200, 500):
        service.status = status
        probe = probes.check(probe)
        assert probe.state == "up"
    assert probe.consecutive_failures == 1
    assert outbox() == [] and flips(probe) == [("unknown", "up")]

    service.status = 500
    assert probes.check(probe).state == "down"  # two in a row now
    assert [m.subject for m in outbox()] == ["[DR Portal] backend is DOWN"]


def test_recovery_flips_back_up_on_one_success(service, probe):
    probe.failures_before_down = 4
    probe.save()
    probes.check(probe)
    service.status = 500
    assert check_many(probe, 4).state == "down"

    service.status = 200
    up = probes.check(probe)
    assert (up.state, up.consecutive_failures, up.last_error) == ("up", 0, "")
    assert StatusComponent.objects.get().state == "operational"
    assert outbox()[-1].subject == "[DR Portal] backend is up again"
    assert flips(probe) == [("unknown", "up"), ("up", "down"), ("down", "up")]


def test_a_single_failure_is_enough_when_asked(service, probe):
    probe.failures_before_down = 1
    probe.save()
    probes.check(probe)
    service.redis = False
    assert probes.check(probe).state == "down"
    assert [m.subject for m in outbox()] == ["[DR Portal] backend is DOWN"]


def test_the_database_refuses_a_threshold_below_one(probe):
    with pytest.raises(IntegrityError), transaction.atomic():
        Probe.objects.filter(pk=probe.pk).update(failures_before_down=0)


def test_threshold_is_edited_in_the_admin(admin_client, probe):
    url = reverse("admin:drportal_probe_change", args=[probe.pk])
    page = admin_client.get(url).content.decode()
    assert 'name="failures_before_down" value="2"' in page
    assert "consecutive failures" in page.lower()

    form = {
        "name": probe.name,
        "url": probe.url,
        "expected_status": "200",
        "json_field": "redis",
        "interval": "00:01:00",
        "timeout": "00:00:02",
        "failures_before_down": "5",
        "component": str(probe.component_id),
        "enabled": "on",
        "results-TOTAL_FORMS": "0",
        "results-INITIAL_FORMS": "0",
    }
    assert admin_client.post(url, form).status_code == 302
    probe.refresh_from_db()
    assert probe.failures_before_down == 5

    form["failures_before_down"] = "0"
    response = admin_client.post(url, form)
    assert response.status_code == 200 and "greater than or equal to 1" in response.content.decode()
    probe.refresh_from_db()
    assert probe.failures_before_down == 5


def test_unreachable_url_is_down(probe):
    from tests.conftest import free_port

    probe.url = f"http://127.0.0.1:{free_port()}/health"
    probe.save()
    result = probes.check(probe)
    assert result.state == "down" and result.last_error.startswith("unreachable")


def test_run_due_only_checks_due_probes(probe):
    from django.utils import timezone

    assert probes.run_due() == 1
    assert probes.run_due() == 0  # next check is a minute away
    assert probes.run_due(timezone.now() + timedelta(minutes=2)) == 1


def test_health_checks_plan_section(tmp_path):
    StatusComponent.objects.create(name="API")
    plan = tmp_path / "plan.toml"
    plan.write_text(
        '[health_checks.backend]\nurl = "https://api.botflow.co.za/health"\njson_field = "redis"\n'
        'interval = "1m"\ntimeout = "10s"\ncomponent = "API"\n'
    )
    call_command("applyplan", str(plan))
    call_command("applyplan", str(plan))
    probe = Probe.objects.get()
    assert probe.json_field == "redis" and probe.component.name == "API" and probe.interval == timedelta(minutes=1)
    assert probe.failures_before_down == 2  # not in the plan: the default

    plan.write_text(plan.read_text() + "failures_before_down = 4\n")
    call_command("applyplan", str(plan))
    assert Probe.objects.get().failures_before_down == 4


@pytest.mark.parametrize(
    "value, problem",
    [
        ("0", "must be at least 1, got 0"),
        ("101", "must be at most 100, got 101"),
        ('"3"', "must be a whole number, got '3'"),
        ("true", "must be a whole number, got True"),
        ("2.5", "must be a whole number, got 2.5"),
    ],
)
def test_health_checks_plan_rejects_a_bad_threshold(tmp_path, value, problem):
    from django.core.management import CommandError

    plan = tmp_path / "plan.toml"
    plan.write_text(
        f'[health_checks.backend]\nurl = "https://api.botflow.co.za/health"\nfailures_before_down = {value}\n'
    )
    with pytest.raises(CommandError) as raised:
        call_command("applyplan", str(plan))
    assert str(raised.value) == f"{plan} [health_checks.backend] key 'failures_before_down': {problem}"
    assert not Probe.objects.exists()
