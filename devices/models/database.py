"""A customer's MyGeotab database the portal holds a service account for."""

import re
from urllib.parse import urlparse

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from portal.crypto import EncryptedTextField

_HOST_RE = re.compile(r"^[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


def validate_mygeotab_server(value: str) -> None:
    """A bare host (``my.geotab.com``) or a full URL with its API path (``http://…/apiv1``).

    The SDK turns a bare host into ``https://host/apiv1`` and uses a URL with a path verbatim;
    anything in between (a scheme without a path, ``host:port``) it silently rewrites into a
    wrong URL (reference §4.7), so it is refused here.
    """
    if not value:
        return
    if "://" in value:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path.strip("/") == "":
            raise ValidationError("Give a full URL with its API path, e.g. https://my3.geotab.com/apiv1.")
        return
    if not _HOST_RE.match(value):
        raise ValidationError("Give a host name (e.g. my.geotab.com) or a full URL ending in /apiv1.")


class CustomerDatabase(models.Model):
    """A MyGeotab database and the service account the portal uses to add devices to it.

    Geotab asks solutions to use a dedicated service account per database; its password is
    stored encrypted (portal.crypto) and never leaves the portal (not in the API, logs or ledger).
    """

    label = models.CharField(max_length=120, blank=True, help_text="Shown to staff; defaults to the database name.")
    server = models.CharField(
        max_length=300, blank=True, validators=[validate_mygeotab_server],
        help_text="Federation host or full API URL; blank = the portal default (MYGEOTAB_SERVER).",
    )
    database = models.CharField("database name", max_length=120)
    username = models.CharField("service user", max_length=254)
    password = EncryptedTextField("service password", blank=True)
    # Group ids new devices join (ids are per database; GroupCompanyId is the root, reference §3.3).
    default_groups = models.JSONField(default=list, blank=True)
    active = models.BooleanField(default=True)

    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_check_ok = models.BooleanField(null=True, blank=True)
    last_check_message = models.CharField(max_length=500, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["database"]
        constraints = [
            models.UniqueConstraint(fields=["server", "database"], name="customerdatabase_server_db_unique"),
        ]

    def __str__(self):
        return self.label or self.database

    @property
    def effective_server(self) -> str:
        return self.server or settings.MYGEOTAB_SERVER

    @property
    def group_ids(self) -> list[str]:
        groups = [g for g in (self.default_groups or []) if isinstance(g, str) and g]
        return groups or ["GroupCompanyId"]

    def clean(self):
        super().clean()
        if self.default_groups and not (
            isinstance(self.default_groups, list) and all(isinstance(g, str) and g for g in self.default_groups)
        ):
            raise ValidationError({"default_groups": 'A list of group ids, e.g. ["GroupCompanyId"].'})


class CustomerDatabaseAccount(models.Model):
    """Links a database to a partner account by its ERP number (orders' Account is not an FK
    target for the devices app: accounts are matched by ``erp_no``, as Device does)."""

    database = models.ForeignKey(CustomerDatabase, on_delete=models.CASCADE, related_name="accounts")
    erp_no = models.CharField("partner account (ERP no.)", max_length=32, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["database", "erp_no"], name="customerdatabaseaccount_unique"),
        ]

    def __str__(self):
        return f"{self.erp_no} → {self.database}"
