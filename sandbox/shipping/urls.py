"""Mounted at /sandbox/myadmin/api/v3/shipping/partner — no trailing slash, like the real base —
so the sub-paths begin with "/" (written as `[/]` to say it is deliberate)."""

from django.urls import path, re_path

from sandbox.shipping import views

urlpatterns = [
    path("", views.orders, name="sandbox-shipping-orders"),
    re_path(r"^[/]$", views.orders),
    re_path(r"^[/](?P<order_header_id>[0-9]+)$", views.order_detail, name="sandbox-shipping-order"),
    re_path(r"^[/](?P<order_header_id>[0-9]+)/items$", views.order_items, name="sandbox-shipping-items"),
]
