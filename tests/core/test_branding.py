"""The portal's own name on every page it serves (login, lockout, read-only, 403, 404, 500), a favicon,
and a "View site" link that leads somewhere."""

from __future__ import annotations

import re

import pytest
from django.test import RequestFactory
from django.urls import reverse

pytestmark = pytest.mark.django_db

DJANGO_BRANDING = ("Django administration", "Django site admin")


def assert_branded(html: str) -> None:
    for text in DJANGO_BRANDING:
        assert text not in html, text
    title = re.search(r"<title>(.*?)</title>", html, re.S)
    assert title and "DR Portal" in title.group(1), title
    assert 'id="site-name"' in html and "DR Portal" in html
    assert 'rel="icon"' in html


def test_the_login_page(client):
    assert_branded(client.get(reverse("admin:login")).content.decode())


def test_the_lockout_page(client, django_user_model, settings):
    django_user_model.objects.create_user("alice", password="right", is_staff=True)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("admin:login"), {"username": "alice", "password": "wrong"})
    response = client.post(reverse("admin:login"), {"username": "alice", "password": "wrong"})
    assert response.status_code == 429
    html = response.content.decode()
    assert "locked" in html
    assert_branded(html)


def test_the_read_only_page(admin_client, django_user_model):
    from incidents.models import Incident, Severity
    from incidents.services import security

    user = django_user_model.objects.get(username="admin")
    severity = Severity.objects.create(key="P1", name="Critical", target_rto="01:00:00")
    incident = Incident.open(title="breach", severity=severity, user=user)
    security.set_read_only(incident, True, user)
    response = admin_client.post(reverse("admin:backups_location_add"), {"name": "x"})
    assert response.status_code == 503
    html = response.content.decode()
    assert "read-only" in html
    assert_branded(html)


def test_the_403_page(client, django_user_model):
    from drportal import roles

    viewer = django_user_model.objects.create_user("viewer", password="pw")
    roles.assign(viewer, roles.VIEWER)
    client.force_login(viewer)
    response = client.get(reverse("admin:backups_location_add"))
    assert response.status_code == 403
    html = response.content.decode()
    assert "not allowed" in html.lower() or "permission" in html.lower()
    assert_branded(html)


def test_the_404_page(admin_client, client):
    for response in (client.get("/no-such-page"), admin_client.get("/admin/no-such-app/")):
        assert response.status_code == 404
        html = response.content.decode()
        assert "not found" in html.lower()
        assert_branded(html)


def test_the_500_page_needs_no_database_or_request_context():
    from django.views.defaults import server_error

    response = server_error(RequestFactory().get("/admin/"))
    assert response.status_code == 500
    html = response.content.decode()
    assert "went wrong" in html.lower()
    for text in DJANGO_BRANDING:
        assert text not in html
    assert "<title>Server error | DR Portal</title>" in html and 'rel="icon"' in html


def test_a_favicon_is_served(client):
    response = client.get("/favicon.ico", follow=True)
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert body[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert response["Content-Type"] in ("image/x-icon", "image/vnd.microsoft.icon")


def test_view_site_leads_to_a_page(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    link = re.search(r'<a href="([^"]+)">View site</a>', html)
    assert link, "no View site link"
    response = admin_client.get(link.group(1), follow=True)
    assert response.status_code == 200
