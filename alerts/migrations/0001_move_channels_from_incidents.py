"""Channel and Notification move from incidents to alerts: a change of Django's state only.

The tables stay where incidents 0001 created them (``db_table`` keeps their names; see
alerts/models.py), so an existing installation keeps every row and nothing is copied. Hence the
dependency on incidents 0001 (it creates the tables on a fresh install); incidents 0007 removes the
models from incidents' state.

Content types and permissions are renamed in place (not recreated), so the roles' groups, users'
permissions and the admin's log entries keep pointing at the same rows.
"""

import django.utils.timezone
from django.db import migrations, models

import drportal.fields
import drportal.validators

MOVES = [("notificationchannel", "channel"), ("notification", "notification")]


def rename_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    for old, new in MOVES:
        ct = ContentType.objects.filter(app_label="incidents", model=old).first()
        if ct is None:  # a fresh database: post_migrate creates alerts' content types
            continue
        ContentType.objects.filter(app_label="alerts", model=new).delete()
        ct.app_label, ct.model = "alerts", new
        ct.save()
        for permission in Permission.objects.filter(content_type=ct):
            permission.codename = permission.codename.replace(f"_{old}", f"_{new}")
            permission.name = permission.name.replace("notification channel", "channel")
            permission.save()


def restore_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    for old, new in MOVES:
        ct = ContentType.objects.filter(app_label="alerts", model=new).first()
        if ct is None:
            continue
        ct.app_label, ct.model = "incidents", old
        ct.save()
        for permission in Permission.objects.filter(content_type=ct):
            permission.codename = permission.codename.replace(f"_{new}", f"_{old}")
            permission.save()


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("incidents", "0001_notifications"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Channel",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(max_length=63, unique=True, validators=[drportal.validators.validate_name])),
                        ("kind", models.CharField(choices=[("email", "Email"), ("webhook", "webhook (Slack-compatible)")], max_length=10)),
                        ("email_to", models.TextField(blank=True, help_text="Comma-separated addresses (email channels).")),
                        ("webhook_url", drportal.fields.EncryptedTextField(blank=True, help_text="Incoming-webhook URL (webhook channels). It is a secret: encrypted, never shown.")),
                        ("events", models.JSONField(blank=True, default=list, help_text="Events to send; empty: all of them.")),
                        ("enabled", models.BooleanField(default=True)),
                    ],
                    options={"ordering": ["name"], "db_table": "incidents_notificationchannel"},
                ),
                migrations.CreateModel(
                    name="Notification",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("created_at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ("event", models.CharField(db_index=True, max_length=40)),
                        ("channel", models.CharField(help_text="Channel name, or settings:email / settings:webhook.", max_length=80)),
                        ("kind", models.CharField(max_length=10)),
                        ("subject", models.CharField(max_length=300)),
                        ("body", models.TextField()),
                        ("status", models.CharField(choices=[("sent", "Sent"), ("failed", "Failed")], db_index=True, max_length=10)),
                        ("error", models.TextField(blank=True)),
                        ("object_ref", models.CharField(blank=True, help_text="What it is about, e.g. backuprun:42.", max_length=100)),
                    ],
                    options={"ordering": ["-created_at", "-id"], "db_table": "incidents_notification"},
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(rename_content_types, restore_content_types, elidable=False),
    ]
