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

Forms and buttons that are not changelist actions (an order page's "Provision serials", the
manual termination form) use ``confirm_post``: the page re-posts every field of the original
POST to the same URL with the confirmation added.
"""

from __future__ import annotations

from django.contrib import admin
from django.template.response import TemplateResponse

CONFIRM_FIELD = "portal_confirm"
# Never echoed back as hidden fields: the token is rendered afresh, the flag is the answer.
_NOT_ECHOED = {"csrfmiddlewaretoken", CONFIRM_FIELD}


def is_confirmed(request, action_name: str | None = None) -> bool:
    """True when this POST is the answer "yes" of a confirmation page (for ``action_name``)."""
    if request.method != "POST" or request.POST.get(CONFIRM_FIELD) != "yes":
        return False
    return action_name is None or request.POST.get("action") == action_name


def confirm_post(
    request, *, title: str, count: int, effect: str, opts, objects=(), cancel_url: str = "",
    action_name: str = "", noun: tuple[str, str] | None = None,
) -> TemplateResponse:
    """The confirmation page for this POST. ``effect`` may contain ``{count}``; ``noun`` is
    (singular, plural) of what is counted (default: the model's verbose names)."""
    objects = list(objects)
    singular, plural = noun or (str(opts.verbose_name), str(opts.verbose_name_plural))
    hidden = [(name, value) for name in request.POST if name not in _NOT_ECHOED
              for value in request.POST.getlist(name)]
    context = {
        **admin.site.each_context(request),
        "title": title,
        "opts": opts,
        "app_label": opts.app_label,
        "count": count,
        "noun": singular if count == 1 else plural,
        "effect": effect.format(count=count),
        "action_name": action_name,
        "hidden_fields": hidden,
        "objects": objects,
        "more": max(0, count - len(objects)),
        "confirm_field": CONFIRM_FIELD,
        "cancel_url": cancel_url,
        "has_view_permission": True,
        "preserved_query": request.GET.urlencode(),
    }
    return TemplateResponse(request, "admin/portal/confirm_action.html", context)


def confirm_action(request, queryset, *, title: str, count: int, effect: str, action_name: str,
                   noun: tuple[str, str] | None = None):
    """None when the user confirmed this action on these rows; else the confirmation page.
    ``count`` is how many rows the action applies to (the page lists the first 20); ``effect``
    says what it costs and may contain ``{count}``. The selection (``_selected_action``,
    ``select_across``) travels back in the re-posted fields."""
    if is_confirmed(request, action_name):
        return None
    return confirm_post(request, title=title, count=count, effect=effect, opts=queryset.model._meta,
                        objects=queryset[:20], action_name=action_name, noun=noun)
