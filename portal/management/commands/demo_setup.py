"""Prepare a local portal for a first look: a demo superuser (password printed once) and one
user per role. Idempotent: an existing user is left as it is."""

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from portal import roles


class Command(BaseCommand):
    help = "Create the demo superuser and role users (printed once)."

    def handle(self, *args, **options):
        User = get_user_model()
        created = []
        if not User.objects.filter(username="admin").exists():
            password = secrets.token_urlsafe(9)
            User.objects.create_superuser("admin", "admin@example.com", password)
            created.append(("admin", password, "superuser"))
        for role in roles.ROLES:
            if User.objects.filter(username=role).exists():
                continue
            password = secrets.token_urlsafe(9)
            user = User.objects.create_user(role, f"{role}@example.com", password, is_staff=True)
            user.groups.add(Group.objects.get_or_create(name=role)[0])
            created.append((role, password, f"role {role}"))
        if created:
            self.stdout.write("Demo logins (shown once; change them in the admin):")
            for username, password, what in created:
                self.stdout.write(f"    {username:<11} {password:<14} {what}")
        else:
            self.stdout.write("Demo users already exist (admin, viewer, fulfilment, billing).")
