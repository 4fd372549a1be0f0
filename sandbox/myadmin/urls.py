"""The MyAdmin host: JSON-RPC on /v2/ (and /v3/, same methods here) [C S1, S2]."""

from django.urls import path

from sandbox.myadmin import views

urlpatterns = [
    path("v2/MyAdminApi.ashx", views.jsonrpc, {"version": "v2"}, name="sandbox-myadmin-v2"),
    path("v2/myadminapi.ashx", views.jsonrpc, {"version": "v2"}),  # the adapter's lowercase path [C S10]
    path("v3/MyAdminApi.ashx", views.jsonrpc, {"version": "v3"}, name="sandbox-myadmin-v3"),
    path("termination-sheet.<str:extension>", __import__("sandbox.myadmin.sheet", fromlist=["_"]).termination_sheet, name="sandbox-myadmin-termination-sheet"),
]
