"""Incident fixtures: the shipped plan's severities, scenarios, checklist, roles and contacts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone


@pytest.fixture
def commander(db):
    return User.objects.create_superuser("commander", "ic@example.com", "pw")


@pytest.fixture
def incident(plan_applied, commander):
    from incidents.models import Incident, Scenario, Severity

    return Incident.open(
        title="Messages table corrupted",
        severity=Severity.objects.get(key="P1"),
        scenario=Scenario.objects.get(key="database-corruption"),
        impact_started_at=timezone.now() - timedelta(minutes=20),
        customer_facing=True,
        user=commander,
    )


def staff_with(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def plan_location(plan_applied):
    """The plan's own "local" location (a folder under the test's tmp_path)."""
    from backups.models import Location

    return Location.objects.get(name="local")
