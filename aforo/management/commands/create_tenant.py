"""Create a tenant (the first one of a server-mode install, or any later one), optionally with
its OWNER."""
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from aforo.models import Tenant
from aforo.tenancy import tenant_create_with_owner


class Command(BaseCommand):
    help = "Create a tenant: SLUG [--name NAME] [--owner USERNAME]."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="The id API callers send in X-Tenant-Id "
                                         "(lowercase letters, digits, - and _).")
        parser.add_argument("--name", default="", help="A display name (default: the slug).")
        parser.add_argument("--owner", default="",
                            help="A user to make its OWNER (created if new).")

    def handle(self, *args, **options):
        slug = options["slug"]
        if Tenant.objects.filter(slug=slug).exists():
            raise CommandError(f"A tenant {slug!r} exists already.")
        try:
            tenant, created = tenant_create_with_owner(slug=slug, name=options["name"],
                                                       owner=options["owner"])
        except ValidationError as exc:
            details = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            raise CommandError(f"Not a valid tenant: {details}") from None
        self.stdout.write(f"Created tenant {tenant.slug} ({tenant.name}).")
        owner = options["owner"]
        if owner:
            self.stdout.write(f"{owner} is its OWNER.")
            if created:
                self.stdout.write(f"{owner} is a new user without a password: set one with "
                                  f"`manage.py changepassword {owner}`.")
        self.stdout.write(f"Issue an API token: manage.py create_api_token --tenant "
                          f"{tenant.slug} --role OWNER")
