import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import RequestFactory
from django.urls import reverse

from portal.roles import BILL, RoleAwareAdminMixin, require_capability


@pytest.mark.django_db
@pytest.mark.parametrize("role,label", [("viewer", "viewer"), ("fulfilment", "fulfilment"), ("billing", "billing")])
def test_header_shows_the_role(make_user, client_for, role, label):
    html = client_for(make_user(role)).get("/admin/").content.decode()
    assert 'id="portal-role"' in html
    assert f"Role: <strong>{label}</strong>" in html


@pytest.mark.django_db
def test_superuser_is_shown_as_administrator(superuser, client_for):
    assert "Role: <strong>administrator</strong>" in client_for(superuser).get("/admin/").content.decode()


class _BillableAdmin(RoleAwareAdminMixin, admin.ModelAdmin):
    actions = ["provision"]

    @admin.action(description="Provision (billable)")
    @require_capability(BILL)
    def provision(self, request, queryset):
        from portal.admin_confirm import confirm_action

        page = confirm_action(request, queryset, title="Provision", count=queryset.count(),
                              effect="mint {count} billable serials", action_name="provision")
        if page is not None:
            return page
        queryset.update(name="provisioned")
        return None


@pytest.mark.django_db
def test_billable_action_hidden_and_refused_for_viewer_confirmed_for_billing(viewer, billing_user):
    model_admin = _BillableAdmin(Group, admin.site)
    group = Group.objects.create(name="g")

    request = RequestFactory().get("/")
    request.user = viewer
    assert "provision" not in model_admin.get_actions(request)
    request.user = billing_user
    assert "provision" in model_admin.get_actions(request)

    # The server refuses a viewer even when the action is posted by hand.
    post = RequestFactory().post("/", {"action": "provision", "_selected_action": [group.pk], "portal_confirm": "yes"})
    post.user = viewer
    post._messages = type("M", (), {"add": lambda *a, **k: None})()
    model_admin.provision(post, Group.objects.filter(pk=group.pk))
    group.refresh_from_db()
    assert group.name == "g"

    # Billing gets the confirmation page first, then the work on confirmation.
    first = RequestFactory().post("/", {"action": "provision", "_selected_action": [group.pk]})
    first.user = billing_user
    page = model_admin.provision(first, Group.objects.filter(pk=group.pk))
    assert page is not None and page.template_name == "admin/portal/confirm_action.html"
    group.refresh_from_db()
    assert group.name == "g"
    second = RequestFactory().post("/", {"action": "provision", "_selected_action": [group.pk], "portal_confirm": "yes"})
    second.user = billing_user
    assert model_admin.provision(second, Group.objects.filter(pk=group.pk)) is None
    group.refresh_from_db()
    assert group.name == "provisioned"


@pytest.mark.django_db
def test_vendor_call_page_says_what_happens_next(viewer, client_for, make_call):
    call = make_call(outcome="unknown", error_name="ReadTimeout", error_message="read timeout after 30 s")
    html = client_for(viewer).get(reverse("admin:portal_vendorcall_change", args=[call.pk])).content.decode()
    assert "read timeout after 30 s" in html
    assert "waits for reconciliation" in html


@pytest.mark.django_db
def test_vendor_status_tag_explains_the_last_failure(make_call):
    from django.template import Context, Template

    group = Group.objects.create(name="g")
    template = Template("{% load portal_admin %}{% portal_vendor_status obj %}")
    assert "portal-vendor-status" not in template.render(Context({"obj": group}))
    make_call(target=f"auth.Group:{group.pk}", outcome="rejected", error_message="Account ERP9 is not yours")
    html = template.render(Context({"obj": group}))
    assert "Account ERP9 is not yours" in html and "needs staff" in html
    make_call(target=f"auth.Group:{group.pk}", outcome="ok")
    assert "portal-vendor-status" not in template.render(Context({"obj": group}))
