from django.core.management.base import BaseCommand, CommandError

from backups.engines import SourceError
from backups.engines import pgbackrest as pgbr
from backups.keys import KeyProblem
from backups.locations import LocationError
from backups.models import Target
from backups.services import pgbackrest


class Command(BaseCommand):
    help = (
        "Print the lines to append to postgresql.conf for a pgbackrest target (stdout); with --apply also write "
        "its pgBackRest configuration, create the stanza, check archiving and escrow the passphrase."
    )

    def add_arguments(self, parser):
        parser.add_argument("target", help="A target whose engine is pgbackrest.")
        parser.add_argument("--archive-timeout", type=int, default=60, help="Seconds (default 60).")
        parser.add_argument(
            "--apply",
            action="store_true",
            help="Also write the configuration, run stanza-create and check (archiving must already be on).",
        )

    def handle(self, target, archive_timeout, apply, **options):
        target_obj = Target.objects.filter(name=target).first()
        if target_obj is None:
            raise CommandError(f"no target named {target!r}")
        if target_obj.engine != pgbr.ENGINE_NAME:
            raise CommandError(f"target {target} uses the {target_obj.engine} engine, not pgbackrest")
        if archive_timeout < 1:
            raise CommandError("--archive-timeout must be at least 1 second")
        try:
            stanza = pgbackrest.stanza_of(target_obj)
            pgbr.write_config(stanza, pgbackrest.repos_of(target_obj))
            for line in pgbr.setup_lines(target, archive_timeout):
                self.stdout.write(line)
            if apply:
                for note in pgbackrest.setup(target_obj):
                    self.stderr.write(note)
        except (SourceError, LocationError, KeyProblem) as exc:
            raise CommandError(str(exc)) from None
