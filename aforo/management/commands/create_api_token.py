"""Issue an API token for a tenant and role; the secret is printed once and never stored."""
from django.core.management.base import BaseCommand, CommandError

from aforo.models import Role, Tenant
from aforo.tenancy import api_token_create


class Command(BaseCommand):
    help = "Create an API token: --tenant SLUG --role ROLE [--user USERNAME] [--name NAME]."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="The tenant's slug (X-Tenant-Id).")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--user", help="Give this user the role in the tenant too.")
        parser.add_argument("--name", default="", help="A label for the token.")

    def handle(self, *args, **options):
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant {options['tenant']!r}.")
        issued = api_token_create(tenant=tenant, role=options["role"],
                                  username=options["user"], name=options["name"])
        self.stdout.write(issued.raw)
        self.stderr.write("Store this token now: it is shown once and kept only as a hash.")
