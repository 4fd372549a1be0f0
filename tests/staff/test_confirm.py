import pytest
from django.contrib.auth.models import Group
from django.test import RequestFactory

from portal.admin_confirm import CONFIRM_FIELD, confirm_action


@pytest.mark.django_db
def test_confirmation_page_then_go_ahead(billing_user):
    groups = [Group.objects.create(name=f"g{i}") for i in range(3)]
    ids = [str(g.pk) for g in groups]
    request = RequestFactory().post("/admin/auth/group/", {"action": "provision", "_selected_action": ids})
    request.user = billing_user
    page = confirm_action(request, Group.objects.filter(pk__in=ids), title="Provision serials", count=3,
                          effect="mint {count} billable serials on MyAdmin", action_name="provision")
    assert page is not None
    page.render()
    html = page.content.decode()
    assert "This will mint 3 billable serials on MyAdmin." in html
    assert f'name="{CONFIRM_FIELD}" value="yes"' in html
    assert all(f'value="{pk}"' in html for pk in ids)

    confirmed = RequestFactory().post("/admin/auth/group/", {"action": "provision", "_selected_action": ids,
                                                              CONFIRM_FIELD: "yes"})
    confirmed.user = billing_user
    assert confirm_action(confirmed, Group.objects.filter(pk__in=ids), title="t", count=3, effect="e",
                          action_name="provision") is None
    # A confirmation for another action does not carry over.
    other = RequestFactory().post("/", {"action": "terminate", CONFIRM_FIELD: "yes"})
    other.user = billing_user
    assert confirm_action(other, Group.objects.none(), title="t", count=0, effect="e", action_name="provision") is not None
