"""A target whose env: source no live worker of its queue can see is flagged before its first run:
in the targets list, on its page and in /health's target check. Real worker processes, started
without and then with the variable; workers report the names they see in their heartbeats."""

from __future__ import annotations

import secrets

import pytest
from django.urls import reverse

from backups.models import BackupRun
from backups.services.queues import unreadable_sources
from drportal import roles
from drportal.models import Heartbeat
from tests.conftest import role_client, start_worker, stop_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def heard_since(name_prefix: str, moment) -> Heartbeat | None:
    return Heartbeat.objects.filter(name__startswith=name_prefix, seen_at__gt=moment).first()


def test_an_env_source_no_worker_sees_is_flagged_before_the_first_run(
    tmp_path, local_location, make_target, source_db, _flush_test_broker, age_key, s3_endpoint
):
    tag = secrets.token_hex(3)
    queue, variable = f"env-{tag}", f"DRP_SOURCE_{tag.upper()}"
    target = make_target("needs-env", f"env:{variable}", [local_location], queue=queue)
    fine = make_target("plain-url", source_db, [local_location], queue=queue)
    client = role_client(roles.DEVOPS)
    expected = f"env:{variable} is not set on any live worker of queue {queue}"

    # No worker at all: said on the list; /health's worker check fails for the queue, not this one.
    unseen = f"env:{variable} cannot be checked: no live worker of queue {queue}"
    assert unreadable_sources()["needs-env"].message == unseen

    blind = start_worker(tmp_path / "blind.log", queues=[queue], name=f"blind-{tag}")
    try:
        wait_for(lambda: heard_since(f"blind-{tag}@", target.updated_at), timeout=30, message="the blind worker")
        changelist = client.get(reverse("admin:backups_target_changelist")).content.decode()
        row = changelist[changelist.index("needs-env") :]
        row = row[: row.index("</tr>")]
        assert 'class="source-warning"' in row and expected in row and f"blind-{tag}@" in row
        other = changelist[changelist.index(">plain-url<") :]
        assert "source-warning" not in other[: other.index("</tr>")]

        page = client.get(reverse("admin:backups_target_change", args=[target.pk])).content.decode()
        assert "Before its next run: " + expected in page and "messagelist" in page
        other_page = client.get(reverse("admin:backups_target_change", args=[fine.pk])).content.decode()
        assert "Before its next run" not in other_page

        body = client.get(reverse("health")).json()
        assert body["checks"]["targets"]["ok"] is False
        assert body["checks"]["targets"]["unreadable"] == [
            {"name": "needs-env", "env": variable, "queue": queue, "never_run": True}
        ]
        assert body["checks"]["worker"]["queues"][queue]["ok"] is True  # the queue is served: only the variable lacks
        # The dashboard's verdict names it too (the same checks as /health).
        dashboard = client.get(reverse("admin:index")).content.decode()
        assert f"target needs-env: env:{variable} is not set on any live worker of queue {queue}" in dashboard
        assert not BackupRun.objects.exists()  # all of this before any run

        # A disabled target is not flagged (nobody backs it up).
        target.enabled = False
        target.save()
        assert "needs-env" not in unreadable_sources()
        target.enabled = True
        target.save()
        # Changed after the workers' last heartbeat: not flagged until they have looked again.
        assert "needs-env" not in unreadable_sources()
        wait_for(lambda: heard_since(f"blind-{tag}@", target.updated_at), timeout=30, message="the next heartbeat")
        assert unreadable_sources()["needs-env"].message.startswith(expected)
    finally:
        stop_worker(blind)

    seeing = start_worker(tmp_path / "seeing.log", {variable: source_db}, queues=[queue], name=f"seeing-{tag}")
    try:
        wait_for(lambda: heard_since(f"seeing-{tag}@", target.updated_at), timeout=30, message="the seeing worker")
        assert Heartbeat.objects.get(name__startswith=f"seeing-{tag}@").env_names == [variable]
        assert "needs-env" not in unreadable_sources()
        changelist = client.get(reverse("admin:backups_target_changelist")).content.decode()
        assert "source-warning" not in changelist
        page = client.get(reverse("admin:backups_target_change", args=[target.pk])).content.decode()
        assert "Before its next run" not in page
        body = client.get(reverse("health")).json()
        assert body["checks"]["targets"]["unreadable"] == []
        assert "postgresql://" not in str(body)
    finally:
        stop_worker(seeing)
