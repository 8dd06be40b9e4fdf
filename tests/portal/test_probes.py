"""Probes against a real local HTTP server: flips to down, alerts, recovers; feeds status components."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.core.management import call_command

from drportal import probes
from drportal.models import Probe, ProbeChange
from incidents.models import Notification, NotificationChannel, StatusComponent

pytestmark = pytest.mark.django_db


class Service:
    """A stand-in BotFlow API: /health answers JSON whose status and redis flag the test controls."""

    def __init__(self) -> None:
        self.status = 200
        self.redis = True
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps({"status": "ok", "redis": outer.redis}).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/health"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def service():
    s = Service()
    yield s
    s.close()


@pytest.fixture
def probe(service):
    NotificationChannel.objects.create(name="ops", kind="email", email_to="ops@example.com")
    component = StatusComponent.objects.create(name="API")
    return Probe.objects.create(
        name="backend", url=service.url, json_field="redis", component=component, timeout=timedelta(seconds=2)
    )


def test_probe_flips_alerts_and_recovers(service, probe):
    assert probes.check(probe).state == "up"
    assert mail.outbox == []  # first good result is not news

    service.redis = False
    down = probes.check(probe)
    assert down.state == "down" and down.last_error == '"redis" is false, expected true'
    assert StatusComponent.objects.get().state == "major"
    assert mail.outbox[-1].subject == "[DR Portal] backend is DOWN"

    service.redis, service.status = True, 500
    assert probes.check(probe).last_error == "HTTP 500, expected 200"
    assert len(mail.outbox) == 1  # still down: no second alert

    service.status = 200
    assert probes.check(probe).state == "up"
    assert mail.outbox[-1].subject == "[DR Portal] backend is up again"
    assert StatusComponent.objects.get().state == "operational"
    assert [(c.from_state, c.to_state) for c in ProbeChange.objects.order_by("pk")] == [
        ("unknown", "up"),
        ("up", "down"),
        ("down", "up"),
    ]
    assert Notification.objects.filter(event__in=["probe_down", "probe_up"]).count() == 2


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
