"""Secrets at rest: a model field that stores its value encrypted with Fernet.

Keys come from ``settings.FIELD_ENCRYPTION_KEYS`` (environment): the first key encrypts, every
key decrypts (cryptography's MultiFernet). To rotate, put a new key first, keep the old ones,
run ``manage.py rotate_encrypted_fields``, then drop the old keys.

The clear value exists only in memory on the model instance; the database, dumps and backups
see only Fernet tokens. The field cannot be filtered on (each encryption is randomised).
"""

from __future__ import annotations

import logging
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

logger = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def _multifernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])
    except (ValueError, TypeError) as exc:
        # Never echo the key itself.
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS holds a value that is not a Fernet key "
            "(32 url-safe base64-encoded bytes; generate one with Fernet.generate_key())."
        ) from exc


def field_cipher() -> MultiFernet:
    keys = tuple(k for k in getattr(settings, "FIELD_ENCRYPTION_KEYS", []) if k)
    if not keys:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS is empty: set it in the environment to store credentials."
        )
    return _multifernet(keys)


def encryption_problem() -> str:
    """Why secrets cannot be stored right now ("" when they can): forms and serializers show
    this as a validation error instead of failing on save."""
    try:
        field_cipher()
    except ImproperlyConfigured as exc:
        return str(exc)
    return ""


def encrypt_str(value: str) -> str:
    return field_cipher().encrypt(value.encode()).decode()


def decrypt_str(token: str) -> str:
    try:
        return field_cipher().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with any key in FIELD_ENCRYPTION_KEYS "
            "(was a key removed before `rotate_encrypted_fields` ran?)."
        ) from exc


class UndecryptableSecret(str):
    """What a read gives when no configured key opens the stored token: an empty, falsy
    marker, so pages and lists still load and the code that needs the secret can say exactly
    what is wrong (re-enter it, or restore the key) instead of failing with a 500."""

    problem = ("The stored secret cannot be decrypted with any key in FIELD_ENCRYPTION_KEYS "
               "(was a key removed before `rotate_encrypted_fields` ran?): enter it again.")


class EncryptedTextField(models.TextField):
    """A text field stored as a Fernet token; reads give back the clear text.

    The empty string stays empty (so "not set" is visible without a key). A token no key
    opens reads as ``UndecryptableSecret`` (and is never written back by a save that keeps it).
    """

    description = "Text encrypted at rest (Fernet, FIELD_ENCRYPTION_KEYS)"

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        try:
            return decrypt_str(value)
        except ImproperlyConfigured:
            logger.warning("%s.%s: a stored secret cannot be decrypted with the configured keys",
                           self.model._meta.label, self.name)
            return UndecryptableSecret("")

    def to_python(self, value):
        return value

    def get_prep_value(self, value):
        if isinstance(value, UndecryptableSecret):
            # Writing the marker back would erase a token that a restored key could still open.
            raise ValueError(UndecryptableSecret.problem)
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt_str(str(value))


def encrypted_fields() -> list[tuple[type[models.Model], list[str]]]:
    """Every concrete model with encrypted fields, with those fields' names."""
    from django.apps import apps

    found = []
    for model in apps.get_models():
        if model._meta.abstract or model._meta.proxy:
            continue
        names = [f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
        if names:
            found.append((model, names))
    return found
