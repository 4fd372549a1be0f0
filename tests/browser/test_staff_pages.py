"""Staff pages in a real browser: sign-in per role, the dashboard, roles, job progress."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from portal.jobs import job_advance, job_finish, job_start
from portal.models import Heartbeat, VendorCall

pytestmark = pytest.mark.django_db(transaction=True)


def _order(status="new"):
    from orders.models import Account, Order

    account, _ = Account.objects.get_or_create(account_id="ERP-1")
    return Order.objects.create(account=account, order_date=timezone.now() - timedelta(days=2), status=status)


@pytest.mark.parametrize("role", ["viewer", "fulfilment", "billing"])
def test_each_role_signs_in_and_sees_its_role(page, login, shot, make_user, role):
    user = make_user(role)
    login(page, user)
    assert " ".join(page.text_content("#portal-role").split()) == f"Role: {role}"
    assert page.is_visible("#portal-dashboard")
    shot(page, f"dashboard-{role}")


def test_dashboard_numbers_move(page, login, shot, make_user):
    user = make_user("fulfilment")
    login(page, user)
    assert page.inner_text('[data-figure="orders-waiting"]') == "0"
    _order("new")
    _order("approved")
    VendorCall.objects.create(system="myadmin", method="ProvisionDeviceToAccount", outcome="unknown",
                              error_message="read timeout", started_at=timezone.now())
    Heartbeat.objects.create(name="beat", beat_at=timezone.now(), worker="w1")
    page.reload()
    assert page.inner_text('[data-figure="orders-waiting"]') == "2"
    assert page.inner_text('[data-figure="liveness"]') == "Beat and workers alive"
    # Every chart is drawn by the portal: no request leaves this server.
    assert page.locator("#panel-vendor-calls svg").count() >= 1
    shot(page, "dashboard-moving")
    # A panel's number leads to the filtered list behind it.
    page.click('#panel-orders a:has([data-figure="orders-waiting"])')
    page.wait_for_selector("#changelist")
    assert "status__in=" in page.url


def test_viewer_cannot_provision_billing_must_confirm(page, login, shot, make_user):
    order = _order("approved")
    viewer = make_user("viewer")
    login(page, viewer)
    page.goto("/admin/orders/order/")
    options = page.locator("select[name=action] option").all_inner_texts() if page.locator("select[name=action]").count() else []
    assert not any("Provision" in o for o in options)
    shot(page, "orders-viewer")
    page.goto(f"/admin/orders/order/{order.pk}/change/")
    assert page.locator("button:has-text('Provision serials')").count() == 0
    # Even a hand-made POST of the action is refused by the server.
    csrf = page.context.cookies()
    token = next(c["value"] for c in csrf if c["name"] == "csrftoken")
    response = page.request.post("/admin/orders/order/", form={
        "csrfmiddlewaretoken": token, "action": "provision", "_selected_action": str(order.pk), "index": "0",
    }, headers={"Referer": page.url})
    assert response.status in (200, 302)
    order.refresh_from_db()
    assert order.status == "approved"


def test_job_progress_bar_moves_without_reload(page, login, shot, make_user):
    user = make_user("fulfilment")
    job = job_start(kind="provisioning", total=4, actor=user)
    login(page, user)
    page.goto(f"/admin/portal/job/{job.pk}/change/")
    page.evaluate("window.__noReload = true")
    bar = page.locator(f"#portal-job-{job.pk} .portal-job-bar")
    assert bar.get_attribute("aria-valuenow") == "0"

    job_advance(job_id=job.pk, done=2)
    page.wait_for_function(
        f"document.querySelector('#portal-job-{job.pk} .portal-job-bar').getAttribute('aria-valuenow') === '50'")
    shot(page, "job-progress-50")
    job_advance(job_id=job.pk, done=1)
    job_advance(job_id=job.pk, failed=1, failure={"label": "CX0000001", "url": "/admin/portal/vendorcall/",
                                                  "message": "MyAdmin refused the account"})
    job_finish(job_id=job.pk, result={"serials": 3})
    page.wait_for_selector(f"#portal-job-{job.pk}.is-finished")
    assert page.evaluate("window.__noReload") is True  # same page: it was never reloaded
    assert page.inner_text(f"#portal-job-{job.pk} [data-field=status_label]") == "Finished with failures"
    link = page.locator(f"#portal-job-{job.pk} .portal-job-failures a")
    assert link.inner_text() == "CX0000001"
    assert '"serials": 3' in page.inner_text(f"#portal-job-{job.pk} .portal-job-summary")
    assert "MyAdmin refused the account" in page.inner_text(f"#portal-job-{job.pk} .portal-job-failures")
    shot(page, "job-finished")


def test_export_csv_from_the_filtered_list(page, login, make_user):
    VendorCall.objects.create(system="navixy", method="tracker/register", outcome="rejected",
                              error_message="=2+2", started_at=timezone.now())
    VendorCall.objects.create(system="dig", method="records", outcome="ok", started_at=timezone.now())
    login(page, make_user("viewer"))
    page.goto("/admin/portal/vendorcall/?system=navixy")
    with page.expect_download() as info:
        page.click("a.portal-export[data-format=csv]")
    with open(info.value.path(), encoding="utf-8-sig") as export:
        body = export.read()
    assert "navixy" in body and "dig" not in body.replace("Request digest", "")
    assert "'=2+2" in body


def test_login_locks_after_repeated_failures(page, make_user, settings):
    settings.LOGIN_MAX_FAILURES = 3
    user = make_user("viewer")
    for _ in range(3):
        page.goto("/admin/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", "wrong")
        page.click("input[type=submit]")
    page.goto("/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "pw-Secret-123")
    page.click("input[type=submit]")
    assert re.search("Too many failed sign-in attempts", page.content())
    assert page.locator("#user-tools").count() == 0
