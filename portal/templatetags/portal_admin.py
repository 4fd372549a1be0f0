"""Template helpers for the portal's admin pages."""

from django import template

from portal.roles import ROLES, user_roles

register = template.Library()


@register.simple_tag
def portal_role_label(user) -> str:
    """The signed-in user's role(s) as shown in the admin header."""
    if not getattr(user, "is_authenticated", False):
        return ""
    if user.is_superuser:
        return "administrator"
    names = [r for r in ROLES if r in user_roles(user)]
    return ", ".join(names) or "no role"


@register.filter
def portal_audit_change_rows(changes):
    """[(field, before, after)] from an AuditEntry.changes dict ({"field": [before, after]})
    or, for bulk entries, ({"field": value})."""
    rows = []
    for field, value in (changes or {}).items():
        if isinstance(value, list) and len(value) == 2:
            rows.append((field, value[0], value[1]))
        else:
            rows.append((field, "", value))
    return rows


@register.simple_tag(takes_context=True)
def portal_dashboard(context):
    """The dashboard panels for the admin home (None for users without a role)."""
    from portal.dashboard import dashboard_panels
    from portal.roles import VIEW, has_capability

    request = context.get("request")
    if request is None or not has_capability(request.user, VIEW):
        return None
    return {p["name"]: p for p in dashboard_panels()}


@register.inclusion_tag("admin/portal/_vendor_status.html")
def portal_vendor_status(obj):
    """On an object's admin page: the last failed vendor call made for it, in plain words,
    and what the portal will do next. Usage: {% load portal_admin %}{% portal_vendor_status original %}"""
    from portal.vendor_status import vendor_status_for

    return {"failures": vendor_status_for(obj)}
