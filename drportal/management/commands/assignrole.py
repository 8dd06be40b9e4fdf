from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from drportal import roles


class Command(BaseCommand):
    help = f"Give a user one of the portal's roles ({', '.join(roles.ROLES)}), or take it away with --remove."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("role", choices=list(roles.ROLES), help="Role (group) name; quote names with spaces.")
        parser.add_argument("--remove", action="store_true")

    def handle(self, username, role, remove, **options):
        User = get_user_model()
        try:
            user = User.objects.get(username=username)
        except User.DoesNotExist:
            raise CommandError(f"no user named {username!r} (create one with createsuperuser or the admin)") from None
        roles.assign(user, role, remove=remove)
        current = ", ".join(user.groups.order_by("name").values_list("name", flat=True)) or "none"
        self.stdout.write(f"{username}: {'removed from' if remove else 'now in'} {role}; roles: {current}")
