import json

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from backups.services import retention


class Command(BaseCommand):
    help = "Delete copies past their location's retention. Never deletes a target's last verified copy."

    def add_arguments(self, parser):
        parser.add_argument("--as-of", help="Judge ages as if it were this time (ISO 8601, UTC if no zone).")
        parser.add_argument("--dry-run", action="store_true", help="Say what would be deleted; delete nothing.")
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, as_of, dry_run, as_json, **options):
        when = None
        if as_of:
            when = parse_datetime(as_of)
            if when is None:
                raise CommandError(f"--as-of {as_of!r} is not a date-time like 2026-12-31T02:00:00Z")
            if timezone.is_naive(when):
                when = timezone.make_aware(when, timezone.utc)
        decisions = retention.prune(when, dry_run=dry_run)
        if as_json:
            self.stdout.write(json.dumps({"dry_run": dry_run, "copies": retention.as_dicts(decisions)}, indent=2))
        else:
            verb = "would delete" if dry_run else "deleted"
            for d in decisions:
                if d.action == "delete":
                    status = f"FAILED: {d.error}" if d.error else verb
                    self.stdout.write(f"{status:14} {d.location}:{d.key} (run #{d.run}; {d.reason})")
            deleted = sum(1 for d in decisions if d.action == "delete" and not d.error)
            kept = sum(1 for d in decisions if d.action == "keep")
            self.stdout.write(f"{deleted} cop{'y' if deleted == 1 else 'ies'} {verb}, {kept} kept")
        if any(d.error for d in decisions):
            raise SystemExit(1)
