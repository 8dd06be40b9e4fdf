import json

from django.core.management.base import BaseCommand, CommandError

from backups.management import command_line_user
from backups.models import BackupRun, Verification
from backups.serializers import verification_to_dict
from backups.services import verify


class Command(BaseCommand):
    help = "Verify a backup run: every copy's size, checksum, decryption, decompression and manifest."

    def add_arguments(self, parser):
        parser.add_argument("run_id", type=int)
        parser.add_argument(
            "--restore-test",
            action="store_true",
            help="Also restore into a scratch database, compare row counts, time it, and drop it.",
        )
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, run_id, restore_test, as_json, **options):
        run = BackupRun.objects.select_related("target").filter(pk=run_id).first()
        if run is None:
            raise CommandError(f"no backup run #{run_id}")
        kind = Verification.Kind.RESTORE_TEST if restore_test else Verification.Kind.INTEGRITY
        verification = verify.start_verification(
            run, kind=kind, trigger=BackupRun.Trigger.COMMAND, command_user=command_line_user()
        )
        result = verify.verify(verification)
        if as_json:
            self.stdout.write(json.dumps(verification_to_dict(result), indent=2))
        else:
            for check in result.checks:
                self.stdout.write(f"{check['result'].upper():4}  {check['name']}: {check['message']}")
            for table in result.tables:
                self.stdout.write(f"      {table['name']}: {table['restored']} rows (expected {table['expected']})")
            if result.error:
                self.stderr.write(result.error)
            self.stdout.write(f"verification #{result.pk} of run #{run.pk}: {result.status}")
        if not result.ok:
            raise SystemExit(1)
