"""An intermediate "are you sure?" page for admin actions that cost money.

    @admin.action(description="Provision serials (billable)")
    @require_capability(BILL)
    def provision(self, request, queryset):
        page = confirm_action(request, queryset, title="Provision serials",
                              count=queryset.count(),
                              effect="mints {count} new billable Geotab serials on MyAdmin",
                              action_name="provision")
        if page is not None:
            return page          # the confirmation page; nothing done yet
        ...                      # confirmed: do the work

The page posts the same action and selection back with ``confirm=yes``; only then does the
helper return None. The server decides from the POST, so a crafted request without the
confirmation still only gets the page.
"""

from __future__ import annotations

from django.contrib.admin import helpers
from django.template.response import TemplateResponse

CONFIRM_FIELD = "portal_confirm"


def confirm_action(request, queryset, *, title: str, count: int, effect: str, action_name: str):
    """None when the user confirmed this action on these rows; else the confirmation page.
    ``effect`` may contain ``{count}``."""
    if request.POST.get(CONFIRM_FIELD) == "yes" and request.POST.get("action") == action_name:
        return None
    opts = queryset.model._meta
    selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
    select_across = request.POST.get("select_across", "0")
    objects = list(queryset[:20])
    context = {
        "title": title,
        "opts": opts,
        "app_label": opts.app_label,
        "count": count,
        "effect": effect.format(count=count),
        "action_name": action_name,
        "selected": selected,
        "select_across": select_across,
        "objects": objects,
        "more": max(0, count - len(objects)),
        "confirm_field": CONFIRM_FIELD,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "index_value": request.POST.get("index", "0"),
        "has_view_permission": True,
        "site_header": "Integrator Portal",
        "preserved_query": request.GET.urlencode(),
    }
    return TemplateResponse(request, "admin/portal/confirm_action.html", context)
