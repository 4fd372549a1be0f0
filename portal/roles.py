"""Who may do what. Three roles (Django groups, created by a data migration):

- ``viewer``: reads everything, changes nothing.
- ``fulfilment``: works orders, assignments, shipments and tracker registrations.
- ``billing``: anything that can bill or stop billing: provision, terminate, contract changes.

One helper, `has_capability`, decides for the admin and the API alike; superusers have all.
"""

from django.contrib.auth.models import Group, Permission
from rest_framework.permissions import SAFE_METHODS, BasePermission

VIEWER = "viewer"
FULFILMENT = "fulfilment"
BILLING = "billing"
ROLES = (VIEWER, FULFILMENT, BILLING)

# Capabilities name what an action needs; roles grant capabilities.
VIEW = "view"
FULFIL = "fulfil"
BILL = "bill"

ROLE_CAPABILITIES = {
    VIEWER: {VIEW},
    FULFILMENT: {VIEW, FULFIL},
    BILLING: {VIEW, BILL},
}

# Which model permissions each role gets in the admin (app_label → codename prefixes).
# "view" everywhere for everyone; changes only where the role's work lies.
_PORTAL_APPS = ("portal", "devices", "orders", "ingestion", "django_celery_beat")
ROLE_MODEL_PERMISSIONS = {
    VIEWER: {app: ("view",) for app in _PORTAL_APPS},
    FULFILMENT: {
        **{app: ("view",) for app in _PORTAL_APPS},
        "orders": ("view", "add", "change"),
        "devices": ("view", "change"),
    },
    BILLING: {
        **{app: ("view",) for app in _PORTAL_APPS},
        "devices": ("view", "add", "change"),
        "ingestion": ("view", "add", "change"),
    },
}


def user_roles(user) -> set[str]:
    if not user or not user.is_authenticated:
        return set()
    cached = getattr(user, "_portal_roles", None)
    if cached is None:
        cached = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        user._portal_roles = cached
    return cached


def has_capability(user, capability: str) -> bool:
    if not user or not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return any(capability in ROLE_CAPABILITIES[role] for role in user_roles(user))


class RolePermission(BasePermission):
    """API default: authenticated users with any role may read; writes need the capability
    the view declares in ``required_capability`` (or per action in ``action_capabilities``)."""

    message = "Your role does not allow this action."

    def has_permission(self, request, view):
        user = request.user
        if not has_capability(user, VIEW):
            return False
        capability = capability_for(view, request)
        return capability is None or has_capability(user, capability)


def capability_for(view, request) -> str | None:
    action = getattr(view, "action", None)
    per_action = getattr(view, "action_capabilities", {}) or {}
    if action in per_action:
        return per_action[action]
    if request.method in SAFE_METHODS:
        return None
    return getattr(view, "required_capability", None) or BILL


def require_capability(capability: str):
    """Decorator for admin actions: refuses (with a message) users without ``capability``,
    and tells ModelAdmin.get_actions to hide the action from them."""

    def decorator(func):
        def wrapper(modeladmin, request, queryset):
            if not has_capability(request.user, capability):
                from django.contrib import messages

                modeladmin.message_user(
                    request, "Your role does not allow this action.", level=messages.ERROR
                )
                return None
            return func(modeladmin, request, queryset)

        wrapper.__name__ = func.__name__
        wrapper.__doc__ = func.__doc__
        wrapper.short_description = getattr(func, "short_description", func.__name__)
        wrapper.required_capability = capability
        for attr in ("allowed_permissions", "confirmation"):
            if hasattr(func, attr):
                setattr(wrapper, attr, getattr(func, attr))
        return wrapper

    return decorator


class RoleAwareAdminMixin:
    """Hide admin actions the user's role cannot run (the action refuses them anyway)."""

    def get_actions(self, request):
        actions = super().get_actions(request)
        return {
            name: spec
            for name, spec in actions.items()
            if has_capability(request.user, getattr(spec[0], "required_capability", VIEW))
        }


def sync_role_permissions(sender=None, **kwargs):
    """Give each role group its model permissions (idempotent; runs after every migrate)."""
    for role, grants in ROLE_MODEL_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for app_label, prefixes in grants.items():
            for perm in Permission.objects.filter(content_type__app_label=app_label):
                if perm.codename.split("_", 1)[0] in prefixes:
                    wanted.append(perm)
        group.permissions.set(wanted)
