"""NotificationChannel and Notification now belong to the alerts app (alerts 0001): removed from
incidents' state only. The tables stay, with every row, and are alerts' now (db_table)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0006_restore_proposal_state"),
        ("alerts", "0001_move_channels_from_incidents"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="Notification"),
                migrations.DeleteModel(name="NotificationChannel"),
            ],
            database_operations=[],
        ),
    ]
