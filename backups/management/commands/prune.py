import json

from django.core.management.base import BaseCommand, CommandError

from backups.services import retention
from drportal.dates import EXAMPLES, parse_moment


class Command(BaseCommand):
    help = "Delete copies past their location's retention. Never deletes a target's last verified copy."

    def add_arguments(self, parser):
        parser.add_argument("--as-of", help=f"Judge ages as if it were this time: {EXAMPLES}.")
        parser.add_argument("--dry-run", action="store_true", help="Say what would be deleted; delete nothing.")
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, as_of, dry_run, as_json, **options):
        when = None
        if as_of is not None:
            try:
                when = parse_moment(as_of)
            except ValueError as exc:
                raise CommandError(f"--as-of: {exc}") from None
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
