from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from drportal.plan import PlanError, apply_plan


class Command(BaseCommand):
    help = "Create or update the portal's configuration from a DR plan TOML file (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="The plan, e.g. plans/botflow.toml")
        parser.add_argument("--dry-run", action="store_true", help="Show what would change; change nothing.")

    def handle(self, file, dry_run, **options):
        try:
            changes = apply_plan(file, dry_run=dry_run)
        except PlanError as exc:
            raise CommandError(str(exc)) from None
        except ValidationError as exc:
            raise CommandError(f"{file}: {'; '.join(exc.messages)}") from None
        for change in changes:
            self.stdout.write(("would be " if dry_run else "") + change)
        if not changes:
            self.stdout.write(f"{file}: nothing to change")
