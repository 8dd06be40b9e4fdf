import json

from django.core.management.base import BaseCommand

from backups.management import positive_int
from backups.models import BackupRun
from backups.serializers import run_to_dict


class Command(BaseCommand):
    help = "List the backup catalogue, newest first."

    def add_arguments(self, parser):
        parser.add_argument("--target", help="Only this target's runs.")
        parser.add_argument("--limit", type=positive_int, default=100, help="At most this many runs (default 100).")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print a JSON list.")

    def handle(self, target, limit, as_json, **options):
        runs = BackupRun.objects.select_related("target", "triggered_by").prefetch_related("artifacts__location")
        if target:
            runs = runs.filter(target__name=target)
        runs = list(runs.order_by("-queued_at", "-id")[:limit])
        if as_json:
            self.stdout.write(json.dumps([run_to_dict(r) for r in runs], indent=2))
            return
        for run in runs:
            when = (run.started_at or run.queued_at).strftime("%Y-%m-%d %H:%M:%S")
            copies = ", ".join(a.location.name for a in run.artifacts.all() if a.status == a.Status.STORED) or "-"
            self.stdout.write(
                f"#{run.pk:<6} {when}  {run.target.name:<20} {run.status:<9} {run.bytes_out:>12}  {copies}"
            )
