import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.test import RequestFactory
from django.urls import reverse

from portal.admin_kit import PortalAdminMixin
from portal.audit import REDACTED, audit_bulk, audit_diff, audit_record, audit_snapshot
from portal.middleware import request_id_var
from portal.models import ApiToken, AuditEntry
from portal.roles import RoleAwareAdminMixin


class AuditedGroupAdmin(PortalAdminMixin, RoleAwareAdminMixin, admin.ModelAdmin):
    pass


def _request(user):
    request = RequestFactory().post("/")
    request.user = user
    return request


@pytest.mark.django_db
def test_record_keeps_before_after_actor_and_request_id(billing_user):
    group = Group.objects.create(name="night shift")
    before = audit_snapshot(group)
    group.name = "day shift"
    group.save()
    token = request_id_var.set("req-abc")
    try:
        entry = audit_record(obj=group, action="update", before=before, after=audit_snapshot(group), actor=billing_user)
    finally:
        request_id_var.reset(token)
    assert entry.changes == {"name": ["night shift", "day shift"]}
    assert entry.actor == billing_user and entry.actor_name == billing_user.username
    assert entry.request_id == "req-abc"
    assert entry.object_id == str(group.pk) and entry.object_repr == "day shift"
    # An update that changed nothing is not recorded.
    assert audit_record(obj=group, action="update", before=before | {"name": "day shift"},
                        after=audit_snapshot(group), actor=billing_user) is None
    with pytest.raises(ValueError):
        audit_record(obj=group, action="exploded")


@pytest.mark.django_db
def test_secrets_never_enter_the_trail(viewer):
    token = ApiToken.objects.create(user=viewer, name="erp", prefix="abcd1234", key_digest="f" * 64)
    snap = audit_snapshot(token)
    assert snap["key_digest"] == REDACTED
    entry = audit_bulk(model=ApiToken, ids=[token.pk], action="bulk_update",
                       changes={"api_key": "s3cret", "name": "x"}, actor="beat")
    assert entry.changes == {"api_key": REDACTED, "name": "x"}
    assert entry.actor is None and entry.actor_name == "beat"
    assert audit_diff({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == {"b": [2, 3], "c": [None, 4]}


@pytest.mark.django_db
def test_bulk_entry_counts_every_id_and_skips_empty(fulfilment_user):
    entry = audit_bulk(model=Group, ids=range(1, 2501), action="bulk_update", changes={"status": "shipped"},
                       actor=fulfilment_user, message="marked shipped")
    assert entry.object_count == 2500 and len(entry.object_ids) == 2500
    assert entry.object_repr == "2500 groups" and entry.object_id == ""
    assert audit_bulk(model=Group, ids=[], action="bulk_update", actor=fulfilment_user) is None


@pytest.mark.django_db
def test_admin_mixin_logs_add_change_delete_and_bulk_delete(superuser):
    model_admin = AuditedGroupAdmin(Group, admin.site)
    request = _request(superuser)
    group = Group(name="alpha")
    model_admin.save_model(request, group, form=None, change=False)
    group.name = "beta"
    model_admin.save_model(request, group, form=None, change=True)
    model_admin.delete_model(request, group)
    others = [Group.objects.create(name=f"g{i}") for i in range(3)]
    model_admin.delete_queryset(request, Group.objects.filter(pk__in=[g.pk for g in others]))

    ct = ContentType.objects.get_for_model(Group)
    entries = list(AuditEntry.objects.filter(content_type=ct).order_by("id"))
    assert [e.action for e in entries] == ["create", "update", "delete", "bulk_delete"]
    assert entries[0].changes["name"] == [None, "alpha"]
    assert entries[1].changes == {"name": ["alpha", "beta"]}
    assert entries[2].changes["name"] == ["beta", None] and entries[2].object_id == str(entries[0].object_id)
    assert sorted(entries[3].object_ids) == sorted(g.pk for g in others) and entries[3].object_count == 3
    assert all(e.actor == superuser for e in entries)


@pytest.mark.django_db
def test_history_page_shows_audit_entries(superuser, client_for):
    model_admin = AuditedGroupAdmin(Group, admin.site)
    group = Group(name="alpha")
    model_admin.save_model(_request(superuser), group, form=None, change=False)
    group.name = "beta"
    model_admin.save_model(_request(superuser), group, form=None, change=True)
    request = RequestFactory().get("/")
    request.user = superuser
    response = model_admin.history_view(request, str(group.pk))
    response.render()
    html = response.content.decode()
    assert 'id="portal-audit"' in html
    assert "alpha" in html and "beta" in html and superuser.username in html


@pytest.mark.django_db
def test_global_log_filters_by_user_model_and_request_id(superuser, viewer, client_for):
    group = Group.objects.create(name="g")
    token = request_id_var.set("req-one")
    audit_record(obj=group, action="create", after=audit_snapshot(group), actor=superuser)
    request_id_var.reset(token)
    audit_record(obj=group, action="create", after=audit_snapshot(group), actor=viewer)
    client = client_for(superuser)
    url = reverse("admin:portal_auditentry_changelist")
    assert client.get(url).status_code == 200
    by_user = client.get(url, {"actor__id__exact": viewer.pk})
    assert by_user.status_code == 200 and by_user.context["cl"].result_count == 1
    by_rid = client.get(url, {"request_id": "req-one"})
    assert by_rid.context["cl"].result_count == 1
    ct = ContentType.objects.get_for_model(Group)
    by_model = client.get(url, {"content_type": ct.pk})
    assert by_model.context["cl"].result_count == 2
    # Nobody edits the trail, not even a superuser.
    entry = AuditEntry.objects.first()
    assert client.post(reverse("admin:portal_auditentry_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403


@pytest.mark.django_db
def test_role_and_schedule_changes_in_the_admin_are_audited(superuser, viewer, client_for):
    client = client_for(superuser)
    billing = Group.objects.get(name="billing")
    response = client.post(reverse("admin:auth_user_change", args=[viewer.pk]), {
        "username": viewer.username, "is_active": "on", "is_staff": "on", "groups": [billing.pk],
        "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00", "last_login_0": "", "last_login_1": "",
        "first_name": "", "last_name": "", "email": "",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    entries = AuditEntry.objects.filter(content_type=ContentType.objects.get_for_model(viewer), object_id=str(viewer.pk))
    role_change = entries.filter(message="related objects changed").get()
    viewer_group = Group.objects.get(name="viewer")
    assert role_change.changes == {"groups": [[viewer_group.pk], [billing.pk]]}
    assert role_change.actor == superuser
    assert all("password" not in e.changes for e in entries)  # unchanged, and never in clear anyway
