"""The plan review workflow: a review is signed off, and its outcome is applied to the document.

- no change: the document counts as reviewed on the review's date; the next review is due one cadence later.
- changes needed: the document is marked "changes requested"; the review stays due (and turns overdue).
- approved: the changes are in; the version goes up (1.0 → 1.1, or 2.0 for a major revision), a change-log
  entry records date, version, changes and author, and the next review is due one cadence later.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ..models import ChangeLogEntry, PlanDocument, PlanReview, bump_version

logger = logging.getLogger(__name__)


def sign_off(review: PlanReview, *, user=None) -> PlanReview:
    """Sign the review off and apply its outcome to the document (once: signing twice is refused)."""
    with transaction.atomic():
        review = PlanReview.objects.select_for_update().get(pk=review.pk)
        refusal = review.sign_off_refusal(user)
        if refusal:
            raise ValidationError(refusal)
        if review.outcome == PlanReview.Outcome.APPROVED and not review.changes.strip():
            raise ValidationError("An approval says what changed (the change-log entry); fill in 'changes'.")
        document = PlanDocument.objects.select_for_update().get(pk=review.document_id)
        if review.outcome == PlanReview.Outcome.CHANGES_NEEDED:
            document.status = PlanDocument.Status.UNDER_REVIEW
        else:
            if review.outcome == PlanReview.Outcome.APPROVED:
                document.version = bump_version(document.version, major=review.major)
                ChangeLogEntry.objects.create(
                    document=document,
                    date=review.reviewed_at,
                    version=document.version,
                    changes=review.changes.strip(),
                    author=review.reviewer_display,
                    review=review,
                )
            if document.last_reviewed_at is None or review.reviewed_at >= document.last_reviewed_at:
                document.last_reviewed_at = review.reviewed_at
                document.next_review_at = document.next_review_after(review.reviewed_at)
            document.status = PlanDocument.Status.ACTIVE
            document.overdue_since = document.reminded_at = None
        document.save()
        review.signed_off_by = user
        review.signed_off_at = timezone.now()
        review.version_after = document.version
        # The last write a review gets: the model refuses any after sign-off.
        review.save(update_fields=["signed_off_by", "signed_off_at", "version_after"])
    logger.info("review %s of %s signed off: %s, version %s", review.pk, document.key, review.outcome, document.version)
    return review
