"""Fault injection for every simulated vendor, switchable at run time (admin, HTTP, tests)."""

from django.db import models


class Fault(models.Model):
    class System(models.TextChoices):
        MYADMIN = "myadmin", "MyAdmin (JSON-RPC)"
        SHIPPING = "shipping", "MyAdmin partner shipping"
        MYGEOTAB = "mygeotab", "MyGeotab"
        DIG = "dig", "Data Intake Gateway"
        NAVIXY = "navixy", "Navixy"

    class Mode(models.TextChoices):
        LATENCY = "latency", "Add latency, then answer normally"
        SLOW = "slow", "Execute, then answer after delay_ms (past the client's timeout)"
        COMMIT_THEN_DROP = "commit_then_drop", "Execute, then close the connection unanswered"
        SERVER_ERROR = "server_error", "HTTP 500 before executing"
        SERVER_ERROR_AFTER_COMMIT = "server_error_after_commit", "Execute, then HTTP 500"
        OUTAGE = "outage", "HTTP 503 (service unavailable), nothing executed"
        RATE_LIMIT = "rate_limit", "HTTP 429 with Retry-After, nothing executed"
        SESSION_EXPIRY = "session_expiry", "Expire the caller's session/token first"

    system = models.CharField(max_length=16, choices=System.choices)
    mode = models.CharField(max_length=32, choices=Mode.choices)
    # Comma-separated method names (e.g. "ProvisionDeviceToAccount"); blank = every method.
    methods = models.CharField(max_length=500, blank=True)
    probability = models.FloatField(default=1.0, help_text="0..1, drawn per request")
    remaining = models.PositiveIntegerField(
        null=True, blank=True, help_text="Fires this many more times; blank = until switched off"
    )
    delay_ms = models.PositiveIntegerField(default=0)
    retry_after_seconds = models.PositiveIntegerField(default=1)
    active = models.BooleanField(default=True)
    fired = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        scope = self.methods or "all methods"
        return f"{self.get_system_display()}: {self.mode} on {scope} (p={self.probability:g})"

    def applies_to(self, method: str) -> bool:
        if not self.methods.strip():
            return True
        return method in {m.strip() for m in self.methods.split(",")}
