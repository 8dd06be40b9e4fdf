"""Client addresses through django-ipware: lockouts and pings use one helper; junk never breaks them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from backups.models import Objective, Ping
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db

PROXY = "10.0.0.5"


@pytest.fixture
def objective():
    return Objective.objects.create(name="logs", rpo=timedelta(minutes=5), ping=True)


@pytest.mark.parametrize("proxies", [0, 1])
@pytest.mark.parametrize("forwarded", ["unknown, 10.0.0.1", "unknown", "garbage, , ::zz", "10.0.0.1, unknown"])
def test_ping_with_a_forwarded_header_that_is_not_an_address_is_recorded(
    client, settings, objective, proxies, forwarded
):
    settings.PROXY_COUNT = proxies
    response = client.post(
        reverse("ping", args=[objective.ping_token]),
        data="wal",
        content_type="text/plain",
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=forwarded,
    )
    assert response.status_code == 200
    ping = Ping.objects.get(objective=objective)
    assert ping.remote_addr in (PROXY, "10.0.0.1")
    objective.refresh_from_db()
    assert objective.state == "ok"


def test_without_a_proxy_the_forwarded_header_is_ignored(client, settings, objective):
    settings.PROXY_COUNT = 0
    client.post(reverse("ping", args=[objective.ping_token]), REMOTE_ADDR="192.0.2.10", HTTP_X_FORWARDED_FOR="6.6.6.6")
    assert Ping.objects.get().remote_addr == "192.0.2.10"


def test_behind_a_proxy_the_ping_records_the_client_not_the_proxy_nor_a_spoofed_entry(client, settings, objective):
    settings.PROXY_COUNT = 1
    client.post(
        reverse("ping", args=[objective.ping_token]), REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7"
    )
    assert Ping.objects.get().remote_addr == "203.0.113.7"


def login(client, password: str, client_address: str, spoofed: str = ""):
    forwarded = f"{spoofed}, {client_address}" if spoofed else client_address
    return client.post(
        reverse("admin:login"),
        {"username": "ic", "password": password, "next": "/admin/"},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=forwarded,
    )


@pytest.fixture
def behind_one_proxy(settings):
    # What BEHIND_PROXY=true sets (checked from the environment in the test below).
    settings.PROXY_COUNT = 1
    settings.AXES_IPWARE_PROXY_COUNT = 1


def test_behind_a_proxy_bad_passwords_from_one_client_do_not_lock_out_another(client, settings, behind_one_proxy):
    User.objects.create_user("ic", password="right-password", is_staff=True)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(client, "wrong", "198.51.100.66")
    assert login(client, "right-password", "198.51.100.66").status_code == 429  # the attacker is locked out
    response = login(client, "right-password", "203.0.113.7")  # the commander, elsewhere, is not
    assert response.status_code == 302 and response["Location"] == "/admin/"


def test_behind_a_proxy_a_spoofed_forwarded_prefix_does_not_dodge_the_lockout(client, settings, behind_one_proxy):
    User.objects.create_user("ic", password="right-password", is_staff=True)
    for n in range(settings.AXES_FAILURE_LIMIT):
        login(client, "wrong", "198.51.100.66", spoofed=f"192.0.2.{n}")
    assert login(client, "right-password", "198.51.100.66", spoofed="192.0.2.200").status_code == 429


@pytest.mark.parametrize(
    ("behind", "count", "expected"), [("true", None, "1"), ("false", None, "0"), ("true", "2", "2")]
)
def test_proxy_count_comes_from_the_environment(tmp_path, behind, count, expected):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "drportal.settings",
        "DRPORTAL_HOME": str(tmp_path),
        "BEHIND_PROXY": behind,
    }
    env.pop("PROXY_COUNT", None)
    if count:
        env["PROXY_COUNT"] = count
    code = "from django.conf import settings; print(settings.PROXY_COUNT, settings.AXES_CLIENT_IP_CALLABLE)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == [expected, "drportal.client_ip.client_address"], done.stderr
