"""Notifications become an outbox: attempts, next try, last error, delivered time, and four statuses.

Existing rows keep their meaning: "sent" becomes "delivered" (at its creation time, one attempt),
"failed" stays "failed" (it was tried once and never retried: given up). ``error`` is renamed
``last_error`` in place (a column rename: no rewrite of the table).
"""

import django.db.models.deletion
from django.db import migrations, models


def outbox_from_records(apps, schema_editor):
    Notification = apps.get_model("alerts", "Notification")
    Notification.objects.filter(status="sent").update(
        status="delivered", delivered_at=models.F("created_at"), attempts=1
    )
    Notification.objects.filter(status="failed").update(attempts=1)


def records_from_outbox(apps, schema_editor):
    Notification = apps.get_model("alerts", "Notification")
    Notification.objects.filter(status="delivered").update(status="sent")
    # Not delivered yet: recorded as failed, as the inline sender would have recorded an attempt that failed.
    Notification.objects.filter(status__in=["pending", "retrying"]).update(status="failed")


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0001_move_channels_from_incidents"),
    ]

    operations = [
        migrations.RenameField(model_name="notification", old_name="error", new_name="last_error"),
        migrations.AlterField(
            model_name="notification",
            name="last_error",
            field=models.TextField(blank=True, help_text="Why the last attempt (or the enqueue) failed."),
        ),
        migrations.AddField(
            model_name="notification",
            name="attempts",
            field=models.PositiveIntegerField(default=0, help_text="Delivery attempts made so far."),
        ),
        migrations.AddField(
            model_name="notification",
            name="delivered_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="notification",
            name="next_attempt_at",
            field=models.DateTimeField(
                blank=True,
                db_index=True,
                help_text="When the next attempt is due (while pending or retrying).",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="notification",
            name="recipient",
            field=models.EmailField(blank=True, help_text="The one address of a one-person email.", max_length=254),
        ),
        migrations.AddField(
            model_name="notification",
            name="via",
            field=models.ForeignKey(
                blank=True,
                help_text="The channel it is sent through (empty for settings channels and one-person emails).",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="notifications",
                to="alerts.channel",
            ),
        ),
        migrations.AlterField(
            model_name="notification",
            name="channel",
            field=models.CharField(
                help_text="Channel name, settings:email / settings:webhook, or stakeholder:/commander:<address>.",
                max_length=80,
            ),
        ),
        migrations.AlterField(
            model_name="notification",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("retrying", "Retrying"),
                    ("delivered", "Delivered"),
                    ("failed", "failed (gave up)"),
                ],
                db_index=True,
                default="pending",
                max_length=10,
            ),
        ),
        migrations.RunPython(outbox_from_records, records_from_outbox),
        migrations.AlterModelOptions(
            name="notification",
            options={
                "ordering": ["-created_at", "-id"],
                "permissions": [("retry_notification", "Can retry a failed notification now")],
            },
        ),
        migrations.AddConstraint(
            model_name="notification",
            constraint=models.CheckConstraint(
                condition=models.Q(("status", "delivered"), _negated=True) | models.Q(("delivered_at__isnull", False)),
                name="alerts_notification_delivered_has_time",
            ),
        ),
        migrations.AddConstraint(
            model_name="notification",
            constraint=models.CheckConstraint(
                condition=models.Q(("status__in", ["pending", "retrying"]), _negated=True)
                | models.Q(("next_attempt_at__isnull", False)),
                name="alerts_notification_waiting_has_next_try",
            ),
        ),
    ]
