import json
import sys

from django.core.management.base import BaseCommand, CommandError

from backups.engines import SourceError
from backups.locations import LocationError
from backups.management import command_line_user
from backups.models import BackupRun, Restore
from backups.serializers import restore_to_dict
from backups.services import restore as restores
from backups.services.artifacts import ArtifactRefused


class Command(BaseCommand):
    help = (
        "Restore a backup safely: prove the artifact, restore into a new database, check it, "
        "then swap it in, keeping the previous data for rollback."
    )

    def add_arguments(self, parser):
        parser.add_argument("source", help="A run id, a local artifact path, or an s3://bucket/key URL.")
        parser.add_argument("--to", help="Destination URL or path (default: the target's own source).")
        parser.add_argument("--location", help="Which location's copy to use (with a run id).")
        parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
        parser.add_argument("--json", action="store_true", dest="as_json")
        # pgbackrest targets: restore to a moment (SOURCE is then the target's name).
        parser.add_argument(
            "--time", dest="moment", help="pgbackrest: restore to this moment, e.g. 2026-12-01T14:03:06Z."
        )
        parser.add_argument("--lsn", help="pgbackrest: restore to this LSN, e.g. 0/3000060.")
        parser.add_argument("--latest", action="store_true", help="pgbackrest: restore to the end of the archived WAL.")
        parser.add_argument("--port", type=int, help="pgbackrest: port of the restored cluster (default: a free one).")
        parser.add_argument(
            "--keep-running", action="store_true", help="pgbackrest: leave the restored cluster up to switch over."
        )

    def handle(self, source, to, location, yes, as_json, moment=None, lsn=None, latest=False, **options):
        if moment or lsn or latest:
            self._pitr(source, to, moment, lsn, latest, options.get("port"), options.get("keep_running"), yes, as_json)
            return
        try:
            proposal = restores.propose(source, to=to, location=location)
        except (ArtifactRefused, restores.RestoreFailed, SourceError, LocationError) as exc:
            self._finish_refused(source, str(exc), as_json)
            return
        out = self.stderr if as_json else self.stdout
        for line in proposal.lines():
            out.write(line)
        if not yes and not self._confirm():
            raise CommandError("not confirmed; nothing was changed (pass --yes to skip this question)")
        record = Restore.objects.create(
            source=source,
            destination=to or "",
            location=proposal.ref.location,
            trigger=BackupRun.Trigger.COMMAND,
            command_user=command_line_user(),
            run=proposal.ref.run,
            rollback_name=proposal.plan.rollback_name or "",  # what was shown before "Proceed?"
        )
        record = restores.execute(record, to=to)
        self._report(record, as_json)
        if record.status != Restore.Status.SUCCEEDED:
            raise SystemExit(1)

    def _pitr(self, target, to, moment, lsn, latest, port, keep_running, yes, as_json):
        from backups.services import pgbackrest

        try:
            # The command runs on the database host: every check, the host's included.
            plan = pgbackrest.propose_pitr(
                target,
                moment=moment,
                lsn=lsn,
                latest=latest,
                to=to,
                port=port,
                keep_running=bool(keep_running),
                on_host=True,
            )
        except (pgbackrest.PitrRefused, SourceError, LocationError) as exc:
            self._finish_refused(target, str(exc), as_json)
            return
        out = self.stderr if as_json else self.stdout
        for line in plan.lines() + plan.checks():
            out.write(line)
        if not yes and not self._confirm():
            raise CommandError("not confirmed; nothing was changed (pass --yes to skip this question)")
        record = pgbackrest.record_pitr(plan, trigger=BackupRun.Trigger.COMMAND, command_user=command_line_user())
        record = pgbackrest.execute_pitr(record, plan)
        self._report(record, as_json)
        if record.status != Restore.Status.SUCCEEDED:
            raise SystemExit(1)

    def _confirm(self) -> bool:
        """Ask on the terminal; anything but yes (including no input at all) means no."""
        self.stdout.write("Proceed with this restore? [y/N] ", ending="")
        self.stdout.flush()
        try:
            answer = sys.stdin.readline() if sys.stdin else ""
        except (OSError, ValueError):
            return False
        return answer.strip().lower() in ("y", "yes")

    def _finish_refused(self, source, error, as_json):
        if as_json:
            self.stdout.write(json.dumps({"id": None, "source": source, "status": "refused", "error": error}))
        else:
            self.stderr.write(f"refused: {error}")
        raise SystemExit(1)

    def _report(self, record, as_json):
        if as_json:
            self.stdout.write(json.dumps(restore_to_dict(record), indent=2))
            return
        if record.status == Restore.Status.SUCCEEDED:
            self.stdout.write(record.log)
            self.stdout.write(f"restore #{record.pk} succeeded in {record.duration.total_seconds():.1f} s")
        else:
            self.stderr.write(f"restore #{record.pk} failed: {record.error}")
            if record.format == "pgbackrest" and record.rollback_name:
                self.stderr.write(f"the previous data directory is kept as {record.rollback_name}; see the log")
            elif record.swapped_at is None:
                self.stderr.write("the live data was not changed")
