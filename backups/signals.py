"""Events other apps listen to (alerts, incident timelines, drills). Sent after the row is saved."""

from django.dispatch import Signal

# Sent when a job starts running: sender=the model class, and run= / verification= / restore=
backup_started = Signal()
verification_started = Signal()
restore_started = Signal()
# sender=BackupRun class, run=BackupRun (status succeeded or failed)
backup_finished = Signal()
# sender=Verification class, verification=Verification (passed or failed)
verification_finished = Signal()
# sender=Restore class, restore=Restore (succeeded or failed)
restore_finished = Signal()
# sender=Objective class, objective=Objective, from_state=str, to_state=str, reminder=bool
objective_changed = Signal()
# sender=WatchedQueue class, queue=str, served=bool, targets=list[str]: a queue with targets lost
# its last live worker (served=False) or has one again (served=True)
queue_changed = Signal()
