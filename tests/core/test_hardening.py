"""Production settings pass check --deploy; failed logins are rate-limited."""

from __future__ import annotations

import os

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from tests.conftest import manage_py


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "drportal.settings",
        "DRPORTAL_HOME": str(tmp_path),
        "DJANGO_SECRET_KEY": "k" + os.urandom(40).hex(),
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/drportal",
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "ALLOWED_HOSTS": "dr.example.com",
        "HTTPS": "true",
    }
    result = manage_py("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_complains_without_https(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "drportal.settings",
        "DRPORTAL_HOME": str(tmp_path),
        "DJANGO_SECRET_KEY": "k" + os.urandom(40).hex(),
    }
    result = manage_py("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode != 0
    assert "SECURE_HSTS_SECONDS" in result.stdout + result.stderr


@pytest.mark.django_db
def test_failed_logins_are_locked_out(client, settings):
    User.objects.create_user("ops", password="right-password", is_staff=True)
    url = reverse("admin:login")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(url, {"username": "ops", "password": "wrong"}, REMOTE_ADDR="10.9.8.7")
    response = client.post(url, {"username": "ops", "password": "right-password"}, REMOTE_ADDR="10.9.8.7")
    assert response.status_code == 429
    assert "locked" in response.content.decode().lower()
