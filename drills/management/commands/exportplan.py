from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from drills.models import PlanDocument
from drills.services import export


class Command(BaseCommand):
    help = "Render the living DR plan from the portal's database as Markdown (to standard output by default)."

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=["md"], default="md", help="Output format (Markdown).")
        parser.add_argument("--output", "-o", help="Write to this file instead of standard output.")
        parser.add_argument("--document", help="The plan document's key (default: the first one).")

    def handle(self, format, output, document, **options):
        if document and not PlanDocument.objects.filter(key=document).exists():
            raise CommandError(f"no plan document {document!r}")
        text = export.render(document)
        if output:
            try:
                Path(output).write_text(text, encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"cannot write {output}: {exc.strerror or exc}") from None
            self.stderr.write(f"wrote {output}")
        else:
            self.stdout.write(text, ending="")
