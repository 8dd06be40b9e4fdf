"""python manage.py incidentreport ID [--output FILE]: the post-incident report as Markdown."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from incidents.models import Incident
from incidents.services import report


class Command(BaseCommand):
    help = "Render an incident's post-incident report as Markdown (to stdout, or --output FILE)."

    def add_arguments(self, parser):
        parser.add_argument("incident_id", type=int)
        parser.add_argument("--output", "-o", help="Write to this file instead of stdout.")

    def handle(self, *args, incident_id: int, output: str | None, **options):
        incident = Incident.objects.filter(pk=incident_id).first()
        if incident is None:
            raise CommandError(f"no incident #{incident_id}")
        text = report.render(incident)
        if output:
            try:
                Path(output).write_text(text, encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"cannot write {output}: {exc.strerror or exc}") from None
            self.stderr.write(f"wrote {output}")
        else:
            self.stdout.write(text, ending="")
