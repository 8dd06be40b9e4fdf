import json

from django.core.management.base import BaseCommand

from backups.models import Objective
from backups.services import rpo
from drportal import humanize


class Command(BaseCommand):
    help = "Show every RPO objective: target, current exposure (data-loss window) and state."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, as_json, **options):
        rpo.evaluate()
        objectives = [rpo.describe(o) for o in Objective.objects.filter(enabled=True).prefetch_related("targets")]
        if as_json:
            self.stdout.write(json.dumps(objectives, indent=2))
            return
        for o in objectives:
            exposure = humanize.duration(o["exposure_seconds"], "never backed up")
            target = humanize.duration(o["target_seconds"])
            self.stdout.write(f"{o['name']:<20} {o['state']:<9} exposure {exposure:<16} target {target}")
