import json
import time

from django.core.management.base import BaseCommand, CommandError

from backups.management import command_line_user, positive_seconds
from backups.models import BackupRun, Target
from backups.serializers import run_to_dict
from backups.services import backup


class Command(BaseCommand):
    help = "Back up one target now: in this process, or through the Celery workers with --queue."

    def add_arguments(self, parser):
        parser.add_argument("target", help="Target name (see the admin or plans/*.toml)")
        parser.add_argument("--queue", action="store_true", help="Hand the job to the workers and wait for it.")
        parser.add_argument("--timeout", type=positive_seconds, default=6 * 3600, help="With --queue: seconds to wait.")
        parser.add_argument(
            "--verify",
            choices=["queue", "now", "no"],
            default="queue",
            help="After a backup in this process: queue its verification for the workers (default), "
            "verify it here before exiting, or not at all.",
        )
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print the finished run as one JSON object."
        )
        parser.add_argument(
            "--type",
            choices=["full", "diff", "incr"],
            dest="backup_type",
            help="pgbackrest targets only: the backup type (default: what the schedule would take next).",
        )

    def handle(self, target, queue, timeout, as_json, verify, backup_type=None, **options):
        try:
            target_obj = Target.objects.get(name=target)
        except Target.DoesNotExist:
            names = ", ".join(Target.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"no target named {target!r} (targets: {names})") from None
        if backup_type and target_obj.engine != "pgbackrest":
            raise CommandError(f"--type applies to pgbackrest targets; {target} uses the {target_obj.engine} engine")
        person = command_line_user()
        run = backup.start_backup(target_obj, trigger=BackupRun.Trigger.COMMAND, command_user=person)
        if backup_type:
            from backups.services import pgbackrest

            pgbackrest.request_type(run, backup_type)
        if queue:
            from backups.tasks import enqueue_backup

            enqueue_backup(run)
            run = self._wait(run, timeout)
        else:
            try:
                run = backup.execute(run)
            except backup.AnotherRunActive as exc:
                run = backup.refuse(run, str(exc))
            if run.status in BackupRun.WITH_ARTIFACT:
                self._verify(run, verify, person)
        run = (
            BackupRun.objects.select_related("target", "triggered_by")
            .prefetch_related("artifacts__location")
            .get(pk=run.pk)
        )
        self._report(run, as_json)
        if run.status != BackupRun.Status.SUCCEEDED:
            raise SystemExit(1)

    def _verify(self, run, how: str, person: str) -> None:
        """Objectives count only verified copies, so a backup is checked unless asked not to."""
        from backups.models import Verification
        from backups.services import verify as verification
        from backups.tasks import queue_verification_after_backup

        if how == "now":
            result = verification.verify(
                verification.start_verification(
                    run, kind=Verification.Kind.INTEGRITY, trigger=BackupRun.Trigger.COMMAND, command_user=person
                )
            )
            self.stderr.write(f"verification #{result.pk}: {result.status}")
        elif (
            how == "queue"
            and queue_verification_after_backup(run, trigger=BackupRun.Trigger.COMMAND, command_user=person) is None
        ):
            self.stderr.write(f"could not queue the verification; run: manage.py verify {run.pk}")

    def _wait(self, run, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.is_finished:
                return run
            time.sleep(0.2)
        raise CommandError(f"run #{run.pk} did not finish within {timeout:.0f} s (status: {run.status})")

    def _report(self, run, as_json):
        if as_json:
            self.stdout.write(json.dumps(run_to_dict(run), indent=2))
            return
        if run.status == BackupRun.Status.SUCCEEDED:
            self.stdout.write(
                f"run #{run.pk} of {run.target.name} succeeded: {run.bytes_in} bytes read, "
                f"{run.bytes_out} bytes written, sha256 {run.sha256}"
            )
            for artifact in run.artifacts.all():
                self.stdout.write(f"  {artifact.location.name}: {artifact.url}")
        else:
            self.stderr.write(f"run #{run.pk} of {run.target.name} {run.status}: {run.error}")
            # A partial run's copies that landed are good backups: say where they are.
            for artifact in run.artifacts.all():
                self.stderr.write(f"  stored in {artifact.location.name}: {artifact.url}")
