"""Cross-role access matrix over every API operation and every admin action, discovered at run
time from the API router and the admin site (see discovery.py).

Policy under test (DESIGN §3, portal/roles.py):
- nobody anonymous reads or writes anything;
- a `viewer` changes nothing: every write is refused with 403 and no row changes;
- a `fulfilment` user cannot bill: every operation or admin action that needs BILL is refused;
- whatever a role may do answers without a server error and without 401/403;
- an action named like provisioning, termination or a contract change is declared BILL.
Sandbox models are left out: the sandbox is never installed in production.
"""

import pytest
from django.contrib import admin
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.db import SessionStore
from django.test import RequestFactory

from portal import roles
from tests.security.discovery import (
    BILLABLE_NAME,
    admin_actions,
    admin_models,
    api_operations,
)

OPERATIONS = api_operations()
PORTAL_APPS = ("portal", "devices", "orders", "ingestion")
ACTIONS = [a for a in admin_actions() if not a.model._meta.app_label.startswith("sandbox")]
ADMIN_MODELS = [m for m in admin_models() if not m._meta.app_label.startswith("sandbox")]
ROLE_HOLDS = {
    roles.VIEWER: roles.ROLE_CAPABILITIES[roles.VIEWER],
    roles.FULFILMENT: roles.ROLE_CAPABILITIES[roles.FULFILMENT],
    roles.BILLING: roles.ROLE_CAPABILITIES[roles.BILLING],
}
# A key no row will have: permission checks run before the object lookup, so the refusal
# (403) is distinguishable from "not found" (404) without any data.
MISSING_KEY = "999999999"


def _url(op) -> str:
    return op.path(MISSING_KEY)


def _send(client, op):
    method = getattr(client, op.method.lower())
    if op.method in ("POST", "PUT", "PATCH"):
        return method(_url(op), {}, format="json")
    return method(_url(op))


def _ids(items):
    return [i.id for i in items]


def test_discovery_found_the_api_and_the_admin():
    # Guards the guard: an empty matrix would pass every check below.
    assert any(op.prefix == "vendor-calls" for op in OPERATIONS)
    assert ADMIN_MODELS


@pytest.mark.django_db
@pytest.mark.parametrize("op", OPERATIONS, ids=_ids(OPERATIONS))
def test_anonymous_is_refused_everywhere(op, api_client_for, snapshot):
    from rest_framework.test import APIClient

    before = snapshot()
    response = _send(APIClient(), op)
    assert response.status_code in (401, 403), (op.id, response.status_code, response.content[:300])
    assert snapshot() == before


def _vendor_unavailable(response) -> bool:
    try:
        return response.status_code == 503 and response.json().get("code") == "vendor_unavailable"
    except ValueError:
        return False


@pytest.mark.django_db
@pytest.mark.parametrize("role", [roles.VIEWER, roles.FULFILMENT, roles.BILLING])
@pytest.mark.parametrize("op", OPERATIONS, ids=_ids(OPERATIONS))
def test_api_role_matrix(op, role, make_user, api_client_for, snapshot):
    client = api_client_for(make_user(role))
    needed = op.declared_capability()
    allowed = needed is None or needed in ROLE_HOLDS[role]
    if role == roles.VIEWER and op.is_write:
        assert not allowed, f"{op.id} lets a viewer write (declared capability {needed!r})"
    before = snapshot()
    response = _send(client, op)
    # No vendor is reachable here: an operation that needs one must say so (503
    # "vendor_unavailable", nothing done), never crash. Every other 5xx is a bug.
    assert response.status_code < 500 or _vendor_unavailable(response), (
        op.id, role, response.status_code, response.content[:500])
    if allowed:
        assert response.status_code not in (401, 403), (op.id, role, response.content[:300])
    else:
        assert response.status_code == 403, (op.id, role, response.status_code, response.content[:300])
        assert snapshot() == before, f"{op.id} refused {role} but changed rows"


@pytest.mark.parametrize("op", [o for o in OPERATIONS if o.is_write], ids=_ids([o for o in OPERATIONS if o.is_write]))
def test_billable_api_operations_need_bill(op):
    if BILLABLE_NAME.search(op.action) or BILLABLE_NAME.search(op.prefix):
        assert op.declared_capability() == roles.BILL, (
            f"{op.id} provisions, terminates or changes a contract but is declared "
            f"{op.declared_capability()!r}, so a fulfilment user could bill"
        )


# ---------------------------------------------------------------------------------- admin
def _admin_request(user, method="post"):
    request = getattr(RequestFactory(), method)("/admin/")
    request.user = user
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    return request


@pytest.mark.parametrize("action", ACTIONS, ids=_ids(ACTIONS))
def test_portal_admin_actions_declare_a_capability(action):
    if action.model._meta.app_label not in PORTAL_APPS or action.name == "delete_selected":
        return
    assert action.declared_capability in (roles.VIEW, roles.FULFIL, roles.BILL), (
        f"{action.id} has no @require_capability: every role that can see the list could run it"
    )
    if BILLABLE_NAME.search(action.name):
        assert action.declared_capability == roles.BILL, f"{action.id} bills but is not declared BILL"


@pytest.mark.django_db
@pytest.mark.parametrize("role", [roles.VIEWER, roles.FULFILMENT])
@pytest.mark.parametrize("action", ACTIONS, ids=_ids(ACTIONS))
def test_admin_action_is_not_offered_to_a_role_that_lacks_it(action, role, make_user):
    """What get_actions offers is exactly what the changelist POST accepts, so an action left
    out here cannot be run by that role through the admin."""
    user = make_user(role)
    model_admin = admin.site._registry[action.model]
    offered = model_admin.get_actions(_admin_request(user, "get"))
    if action.name not in offered:
        return
    declared = action.declared_capability
    if role == roles.VIEWER:
        assert declared == roles.VIEW, (
            f"{action.id} is offered to a viewer and can change data (declared {declared!r})"
        )
    else:
        assert declared != roles.BILL and not BILLABLE_NAME.search(action.name), (
            f"{action.id} is offered to a fulfilment user but bills"
        )


@pytest.mark.django_db
@pytest.mark.parametrize("role", [roles.VIEWER, roles.FULFILMENT, roles.BILLING])
@pytest.mark.parametrize("action", [a for a in ACTIONS if a.declared_capability],
                         ids=_ids([a for a in ACTIONS if a.declared_capability]))
def test_admin_action_refuses_when_called_anyway(action, role, make_user, snapshot):
    """The decorated action itself refuses a role without the capability (a forged POST or a
    second admin site that forgets the mixin still cannot bill)."""
    if action.declared_capability in ROLE_HOLDS[role]:
        return
    user = make_user(role)
    model_admin = admin.site._registry[action.model]
    request = _admin_request(user)
    before = snapshot()
    result = action.func(model_admin, request, action.model._default_manager.all())
    assert result is None
    messages = [str(m) for m in request._messages]
    assert any("does not allow" in m for m in messages), messages
    assert snapshot() == before


# Account self-service: every user, viewers included, creates and revokes their OWN API tokens
# (portal.admin.ApiTokenAdmin). Checked separately: a viewer cannot make one for someone else.
SELF_SERVICE_MODELS = {"portal.ApiToken"}


@pytest.mark.django_db
@pytest.mark.parametrize("model", ADMIN_MODELS, ids=[m._meta.label for m in ADMIN_MODELS])
def test_viewer_cannot_add_change_or_delete_in_the_admin(model, make_user, client, snapshot):
    user = make_user(roles.VIEWER)
    model_admin = admin.site._registry[model]
    request = _admin_request(user, "get")
    if model._meta.label in SELF_SERVICE_MODELS:
        other = make_user(roles.BILLING)
        client.force_login(user)
        before = snapshot()
        client.post(f"/admin/{model._meta.app_label}/{model._meta.model_name}/add/",
                    {"name": "not mine", "user": other.pk}, follow=True)
        assert not model._default_manager.filter(user=other).exists(), "a viewer made a token for another user"
        assert {k: v for k, v in snapshot().items() if k != model._meta.label} == \
            {k: v for k, v in before.items() if k != model._meta.label}
        return
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    client.force_login(user)
    before = snapshot()
    # follow=True: an admin may send "add" to a page of its own (orders' manual entry); the
    # page it lands on must refuse the viewer too.
    response = client.post(f"/admin/{model._meta.app_label}/{model._meta.model_name}/add/", {},
                           follow=True)
    assert response.status_code == 403, (model._meta.label, response.status_code, response.redirect_chain)
    assert snapshot() == before
