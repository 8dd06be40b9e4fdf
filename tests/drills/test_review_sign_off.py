"""Four eyes on plan reviews: a review is never signed off by its own author, and once signed off it
is a read-only record, from the service, the model and the admin alike."""

from __future__ import annotations

from datetime import date

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from drills.models import PlanDocument, PlanReview
from drills.services import reviews

pytestmark = pytest.mark.django_db


@pytest.fixture
def document(db):
    return PlanDocument.objects.create(
        key="plan",
        title="DR Plan",
        owner="DevOps",
        last_reviewed_at=date(2026, 1, 17),
        next_review_at=date(2026, 4, 17),
    )


@pytest.fixture
def people(django_user_model):
    from drportal import roles

    made = {}
    for name in ("alice", "bob"):
        user = django_user_model.objects.create_user(name, password="pw")
        roles.assign(user, roles.DEVOPS)  # drills.*: may write and sign off reviews
        made[name] = user
    return made


def approved(document, **fields) -> PlanReview:
    return PlanReview.objects.create(
        document=document, outcome="approved", changes="New contacts", reviewed_at=date(2026, 4, 1), **fields
    )


def test_the_reviewer_cannot_sign_off_their_own_review(document, people):
    review = approved(document, reviewer=people["alice"])
    with pytest.raises(ValidationError, match="cannot be signed off by its own author"):
        reviews.sign_off(review, user=people["alice"])
    document.refresh_from_db()
    assert document.version == "1.0" and not document.change_log.exists()
    reviews.sign_off(review, user=people["bob"])
    document.refresh_from_db()
    assert document.version == "1.1"


def test_whoever_entered_a_review_for_someone_else_cannot_sign_it_off(document, people):
    review = approved(document, reviewer_name="External auditor", created_by=people["alice"])
    with pytest.raises(ValidationError, match="own author"):
        reviews.sign_off(review, user=people["alice"])


def test_a_sign_off_names_who_signs(document):
    with pytest.raises(ValidationError, match="signed-in user"):
        reviews.sign_off(approved(document, reviewer_name="Auditor"), user=None)


def test_a_signed_off_review_is_read_only_in_the_model(document, people):
    review = reviews.sign_off(approved(document, reviewer=people["alice"]), user=people["bob"])
    review.changes = "Rewritten afterwards"
    with pytest.raises(ValidationError, match="read-only"):
        review.save()
    with pytest.raises(ValidationError, match="cannot be deleted"):
        PlanReview.objects.get(pk=review.pk).delete()
    assert PlanReview.objects.get(pk=review.pk).changes == "New contacts"


def test_the_admin_refuses_signing_off_ones_own_review(client, document, people):
    client.force_login(people["alice"])
    response = client.post(
        reverse("admin:drills_planreview_add"),
        {
            "document": document.pk,
            "reviewed_at": "2026-04-01",
            "outcome": "approved",
            "changes": "New contacts",
            "notes": "",
            "reviewer_name": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    review = PlanReview.objects.get()
    assert review.reviewer == people["alice"] and review.created_by == people["alice"]

    response = client.post(
        reverse("admin:drills_planreview_changelist"),
        {"action": "sign_off", "_selected_action": [review.pk]},
        follow=True,
    )
    assert "cannot be signed off by its own author" in response.content.decode()
    review.refresh_from_db()
    assert review.signed_off_at is None

    client.force_login(people["bob"])
    client.post(reverse("admin:drills_planreview_changelist"), {"action": "sign_off", "_selected_action": [review.pk]})
    review.refresh_from_db()
    assert review.signed_off_by == people["bob"]


def test_a_signed_off_review_is_read_only_in_the_admin(admin_client, document, people):
    review = reviews.sign_off(approved(document, reviewer=people["alice"]), user=people["bob"])
    change = reverse("admin:drills_planreview_change", args=[review.pk])
    page = admin_client.get(change).content.decode()
    assert 'name="_save"' not in page and 'name="changes"' not in page  # shown, not editable
    response = admin_client.post(
        change,
        {
            "document": document.pk,
            "reviewed_at": "2026-04-01",
            "outcome": "no_change",
            "changes": "",
            "notes": "",
            "reviewer_name": "",
        },
    )
    assert response.status_code == 403
    assert (
        admin_client.post(reverse("admin:drills_planreview_delete", args=[review.pk]), {"post": "yes"}).status_code
        == 403
    )
    admin_client.post(
        reverse("admin:drills_planreview_changelist"),
        {"action": "delete_selected", "_selected_action": [review.pk], "post": "yes"},
    )
    review.refresh_from_db()
    assert (review.outcome, review.changes) == ("approved", "New contacts")
