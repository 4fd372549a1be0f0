"""The /api/v1/ router. Each app lists its endpoints in its `api` module as ``ROUTES`` =
[(prefix, viewset, basename), ...]; they are collected here so apps stay self-contained."""

import importlib

from rest_framework.routers import DefaultRouter

API_APPS = ("portal", "devices", "orders", "ingestion")


def build_router() -> DefaultRouter:
    router = DefaultRouter()
    for app in API_APPS:
        try:
            module = importlib.import_module(f"{app}.api")
        except ModuleNotFoundError as exc:
            if exc.name != f"{app}.api":
                raise
            continue
        for prefix, viewset, basename in getattr(module, "ROUTES", ()):
            router.register(prefix, viewset, basename=basename)
    return router
