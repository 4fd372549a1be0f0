"""DIG routes. The real service routes case-insensitively (older paths were capitalised) [I]."""

from django.urls import re_path

from sandbox.dig import views

urlpatterns = [
    re_path(r"^(?i:authentication/authenticate)/?$", views.authenticate, name="sandbox-dig-authenticate"),
    re_path(r"^(?i:authentication/refresh-token)/?$", views.refresh_token, name="sandbox-dig-refresh"),
    re_path(r"^(?i:authentication/revoke-token)/?$", views.revoke_token, name="sandbox-dig-revoke"),
    re_path(r"^(?i:records)/?$", views.records, name="sandbox-dig-records"),
    re_path(r"^(?i:invalidrecords)/?$", views.invalid_records, name="sandbox-dig-invalid"),
    re_path(r"^_state/?$", views.simulator_state, name="sandbox-dig-state"),
]
