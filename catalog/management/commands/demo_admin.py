"""manage.py demo_admin: create the demo's superuser ``admin`` (or reset its password) and print the login.

The password is ``$DEMO_ADMIN_PASSWORD`` when set, otherwise a new random one each run.
"""
import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create or reset the demo superuser 'admin' and print its credentials."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--url", default=os.environ.get("DEMO_URL", "http://127.0.0.1:8000"),
                            help="the shop's base URL to print (default http://127.0.0.1:8000, or $DEMO_URL)")

    def handle(self, *args, username, url, **options):
        password = os.environ.get("DEMO_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User = get_user_model()
        user, created = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()
        self.stdout.write(self.style.SUCCESS(f"{'Created' if created else 'Reset the password of'} the superuser."))
        self.stdout.write(f"  Admin:    {url.rstrip('/')}/admin/")
        self.stdout.write(f"  Username: {username}")
        self.stdout.write(f"  Password: {password}")
