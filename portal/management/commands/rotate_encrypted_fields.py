"""Re-encrypt every EncryptedTextField with the first key of FIELD_ENCRYPTION_KEYS.

Run after putting a new key first; the old keys may be removed once this has finished.
Each row is rewritten in its own short transaction, so the command can be interrupted and
run again (rows already on the new key are simply re-encrypted once more).
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from portal.crypto import UndecryptableSecret, encrypted_fields, field_cipher


class Command(BaseCommand):
    help = "Re-encrypt stored secrets with the current primary key (FIELD_ENCRYPTION_KEYS[0])."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, batch_size: int, **options):
        field_cipher()  # fail early, with a clear message, when no key is configured
        total = unreadable = 0
        for model, names in encrypted_fields():
            count = 0
            pks = list(model._default_manager.order_by("pk").values_list("pk", flat=True))
            for start in range(0, len(pks), batch_size):
                for pk in pks[start:start + batch_size]:
                    with transaction.atomic():
                        obj = model._default_manager.select_for_update().filter(pk=pk).first()
                        if obj is None:
                            continue
                        # Reading decrypted with any key; saving encrypts with the first.
                        values = {n: getattr(obj, n) for n in names}
                        unreadable += sum(isinstance(v, UndecryptableSecret) for v in values.values())
                        updates = {n: v for n, v in values.items() if v and not isinstance(v, UndecryptableSecret)}
                        if updates:
                            # update() encrypts through the field, with the primary key.
                            model._default_manager.filter(pk=pk).update(**updates)
                            count += 1
            total += count
            self.stdout.write(f"{model._meta.label}: {count} row(s) re-encrypted ({', '.join(names)})")
        if unreadable:
            raise CommandError(
                f"{total} row(s) re-encrypted, but {unreadable} secret(s) open with no configured key: "
                "keep the old keys until those are re-entered or their key is restored."
            )
        self.stdout.write(self.style.SUCCESS(f"Done: {total} row(s) re-encrypted."))
