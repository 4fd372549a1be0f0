"""Run-time discovery of what the security checks cover, so the lists never go stale:
every API route registered by the apps (portal.api.router) and every admin action of every
ModelAdmin on the admin site. Nothing here names an endpoint or an action by hand."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.apps import apps
from django.contrib import admin

from portal import roles
from portal.api.router import build_router

# Apps whose tables must not change when a request is refused.
GUARDED_APPS = ("portal", "devices", "orders", "ingestion", "auth", "django_celery_beat")

# An action whose name says it provisions, terminates or changes a contract spends (or stops)
# money: the portal's policy is that it needs the BILL capability, wherever it is declared.
BILLABLE_NAME = re.compile(r"provision|terminat|contract|billing|bill\b|^bill|mint", re.IGNORECASE)

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_STANDARD = {
    # action name → (route, HTTP method)
    "list": ("list", "GET"),
    "create": ("list", "POST"),
    "retrieve": ("detail", "GET"),
    "update": ("detail", "PUT"),
    "partial_update": ("detail", "PATCH"),
    "destroy": ("detail", "DELETE"),
}


@dataclass(frozen=True)
class ApiOperation:
    prefix: str
    viewset: type
    basename: str
    action: str
    method: str
    detail: bool
    url_name: str
    url_path: str = ""

    @property
    def id(self) -> str:
        return f"{self.prefix}:{self.action}:{self.method}"

    def path(self, key: str = "999999999") -> str:
        """The operation's URL under /api/v1/ (built like DefaultRouter builds it, so it does
        not depend on reverse() working for every other pattern in the URLconf)."""
        parts = ["/api/v1", self.prefix]
        if self.detail:
            parts.append(key)
        if self.url_path:
            parts.append(self.url_path)
        return "/".join(parts) + "/"

    @property
    def is_write(self) -> bool:
        return self.method not in SAFE_METHODS

    def declared_capability(self) -> str | None:
        """The capability the viewset declares for this operation (None = any reader)."""
        per_action = getattr(self.viewset, "action_capabilities", {}) or {}
        if self.action in per_action:
            return per_action[self.action]
        if not self.is_write:
            return None
        return getattr(self.viewset, "required_capability", None) or roles.BILL


def api_operations() -> list[ApiOperation]:
    ops: list[ApiOperation] = []
    for prefix, viewset, basename in build_router().registry:
        for action, (route, method) in _STANDARD.items():
            if hasattr(viewset, action):
                ops.append(ApiOperation(prefix, viewset, basename, action, method,
                                        route == "detail", f"{basename}-{route}"))
        for extra in viewset.get_extra_actions():
            for method, func_name in extra.mapping.items():
                ops.append(ApiOperation(prefix, viewset, basename, func_name, method.upper(),
                                        extra.detail, f"{basename}-{extra.url_name}",
                                        extra.url_path))
    return ops


@dataclass(frozen=True)
class AdminAction:
    model: type
    name: str
    func: object

    @property
    def id(self) -> str:
        return f"{self.model._meta.label}:{self.name}"

    @property
    def declared_capability(self) -> str | None:
        return getattr(self.func, "required_capability", None)


def admin_actions() -> list[AdminAction]:
    """Every action every registered ModelAdmin offers (site-wide ones included)."""
    found = []
    for model, model_admin in admin.site._registry.items():
        for func, name, _desc in (model_admin._get_base_actions()):
            found.append(AdminAction(model, name, func))
    return found


def admin_models() -> list[type]:
    return list(admin.site._registry)


def guarded_models():
    for label in GUARDED_APPS:
        try:
            config = apps.get_app_config(label)
        except LookupError:
            continue
        yield from config.get_models()


def row_counts() -> dict[str, int]:
    return {model._meta.label: model._base_manager.count() for model in guarded_models()}
