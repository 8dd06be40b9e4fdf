"""Signals for the apps above alerts (alerts imports none of them)."""

from django.dispatch import Signal

# After every delivery attempt, whatever its outcome. Sent with ``notification`` (its status says
# delivered, retrying or failed; ``last_error`` why). incidents logs its status updates' failures.
delivery_attempted = Signal()
