import json

from django.core.management.base import BaseCommand, CommandError

from backups.locations import LocationError
from backups.models import Location
from backups.services import catalog


class Command(BaseCommand):
    help = (
        "Rebuild the backup catalogue from a location's manifests (after losing the portal's database). "
        "Apply the plan first so the location is known; running it twice adds nothing. Each run keeps the "
        "status and times its manifests recorded. What is skipped is listed with the reason; the exit "
        "status is 1 when a manifest could not be used or a copy is doubtful."
    )

    def add_arguments(self, parser):
        parser.add_argument("location", help="Location name (from the plan or the admin).")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the report as JSON.")

    def handle(self, location, as_json, **options):
        loc = Location.objects.filter(name=location).first()
        if loc is None:
            names = ", ".join(Location.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"no location named {location!r} (locations: {names}); apply the plan first")
        try:
            report = catalog.rebuild(loc)
        except LocationError as exc:
            raise CommandError(str(exc)) from None
        if as_json:
            self.stdout.write(json.dumps({"location": loc.name, **report.as_dict()}, indent=2))
        else:
            self.stdout.write(
                f"{loc.name}: {report.runs_added} run(s) added, {report.copies_added} copy(ies) recorded, "
                f"{report.already_known} already known, {len(report.skipped)} skipped"
            )
            for name in report.targets_created:
                self.stdout.write(f"created target {name} (disabled: set its source and schedule, then enable it)")
            for skipped in report.skipped:
                self.stderr.write(f"skipped {skipped.key}: {skipped.reason}")
            for problem in report.problems:
                self.stderr.write(f"problem: {problem}")
        if report.problems or report.unusable_manifests:
            raise SystemExit(1)
