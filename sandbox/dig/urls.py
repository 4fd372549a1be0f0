"""DIG routes: the lowercase paths of the current spec, and the capitalised ones it used before
2023 (`/Authentication/authenticate`, `/Records`, `/InvalidRecords`), which clients still send;
the real service appears to route case-insensitively [I]."""

from django.urls import path

from sandbox.dig import views

_ROUTES = [
    ("authentication/authenticate", "Authentication/authenticate", views.authenticate, "authenticate"),
    ("authentication/refresh-token", "Authentication/refresh-token", views.refresh_token, "refresh"),
    ("authentication/revoke-token", "Authentication/revoke-token", views.revoke_token, "revoke"),
    ("records", "Records", views.records, "records"),
    ("invalidrecords", "InvalidRecords", views.invalid_records, "invalid"),
]

urlpatterns = [
    *[path(lower, view, name=f"sandbox-dig-{name}") for lower, _, view, name in _ROUTES],
    *[path(legacy, view) for _, legacy, view, _ in _ROUTES],
    path("_state", views.simulator_state, name="sandbox-dig-state"),
]
