"""Whole staff journeys in a real browser, against the sandbox over real HTTP. Background work
runs eagerly (as a worker would, right after the request commits)."""

import pytest
from django.utils import timezone

from tests.orders.conftest import CATALOGUE, make_iccid, make_imei

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def eager_tasks():
    from portal.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, False
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


@pytest.fixture
def vendors(settings, live_server, eager_tasks):
    base = f"{live_server.url}/sandbox"
    settings.MYADMIN_API_URL = f"{base}/myadmin/v2/MyAdminApi.ashx"
    settings.MYADMIN_SHIPPING_URL = f"{base}/myadmin/api/v3/shipping/partner"
    settings.NAVIXY_API_URL = f"{base}/navixy/api-v2"
    settings.DIG_API_URL = f"{base}/dig"
    settings.MYGEOTAB_SERVER = f"{base}/mygeotab/apiv1"
    return base


def _click_order_action(page, label, shot=None):
    button = page.locator(f"button:has-text('{label}')")
    form_id = button.get_attribute("form")
    # The button submits a form that lives outside the change form (nested forms are dropped
    # by browsers, which would leave the button dead).
    assert page.locator(f"form#{form_id}").count() == 1, f"the {label!r} button has no form to submit"
    with page.expect_navigation():
        button.click()
    if page.locator("#portal-confirm").count():
        # A billable action: the page names the count and the cost before anything is done.
        if shot is not None:
            shot(page, f"confirm-{label.lower().replace(' ', '-')}")
        with page.expect_navigation():
            page.click("#portal-confirm-yes")
    page.wait_for_selector("ul.messagelist")
    return page.inner_text("ul.messagelist")


def _wait_for_job(page):
    """On a job's page: wait until its bar finishes (it polls; the page is never reloaded)."""
    assert "/admin/portal/job/" in page.url, page.url
    page.wait_for_selector(".portal-job.is-finished", timeout=60_000)
    return page.inner_text(".portal-job [data-field=status_label]")


def test_order_journey_sync_provision_assign_ship_push(page, login, shot, make_user, vendors):
    from django.contrib.auth.models import Group

    from orders.models import Account, Order, Product

    for code, pid in CATALOGUE:
        Product.objects.get_or_create(code=code, defaults={"myadmin_product_id": pid})
    staff = make_user("fulfilment")
    staff.groups.add(Group.objects.get_or_create(name="billing")[0])
    # The list needs one row to run its "sync" action on.
    seed_account, _ = Account.objects.get_or_create(account_id="SEED01")
    Order.objects.create(account=seed_account, order_date=timezone.now(), status="new", source="manual")

    login(page, staff)
    waiting_before = int(page.inner_text('[data-figure="orders-waiting"]'))

    # 1. Pull orders from the partner API (the sandbox).
    page.goto("/admin/orders/order/")
    sync_button = page.locator("form[action$='/sync/'] [type=submit]")
    if sync_button.count():
        with page.expect_navigation():
            sync_button.click()
    else:
        page.check("input.action-select")
        page.select_option("select[name=action]", "sync_now")
        page.click("button[name=index]")
    # The sync runs as a job: its page shows the bar, then the result and the run.
    assert _wait_for_job(page) == "Succeeded"
    assert "Order sync run #" in page.inner_text(".portal-job-links")
    order = Order.objects.get(order_header_id=700101)
    shot(page, "journey-orders-synced")

    # 2. Review, approve, provision (billable), collect the serials.
    page.goto(f"/admin/orders/order/{order.pk}/change/")
    shot(page, "journey-order-page")
    _click_order_action(page, "Start review")
    _click_order_action(page, "Approve")
    assert "Provision serials" in _click_order_action(page, "Provision serials", shot)
    shot(page, "journey-order-provisioned")
    _click_order_action(page, "Refresh serials")
    order.refresh_from_db()
    items = list(order.items.filter(requires_serial=True).exclude(serial="").order_by("id"))
    assert items and all(i.serial.startswith("CX") for i in items), "serials were minted on the sandbox"

    # 3. Assign IMEI / SIM: preview, then apply.
    page.click(f"a[href$='/{order.pk}/assign/']")
    text = "\n".join(f"{i.serial}, {make_imei(n)}, {make_iccid(n)}" for n, i in enumerate(items, start=1))
    page.fill("textarea", text)
    page.click("input[name=preview]")
    page.click("input[name=apply]")
    page.wait_for_selector("ul.messagelist")
    order.refresh_from_db()
    assert order.status == Order.Status.READY_TO_SHIP

    # 4. Ship: carrier + tracking number; the fulfilment push follows.
    page.click(f"a[href$='/{order.pk}/ship/']")
    page.select_option("select[name=carrier]", index=1)
    page.fill("input[name=tracking_number]", "1Z999AA10123456784")
    page.click("input[type=submit]")
    page.wait_for_selector("ul.messagelist")
    order.refresh_from_db()
    assert order.status in (Order.Status.SHIPPED, Order.Status.FULFILLED)
    assert order.push_status == Order.PushStatus.SUCCEEDED
    shot(page, "journey-order-shipped")

    # 5. The dashboard moved: this order no longer waits on us.
    page.goto("/admin/")
    assert int(page.inner_text('[data-figure="orders-waiting"]')) < waiting_before + Order.objects.filter(
        order_header_id__isnull=False).count()
    shot(page, "journey-dashboard-after")


def test_register_a_tracker_on_navixy(page, login, shot, make_user, vendors):
    from devices.models import Tracker

    login(page, make_user("fulfilment"))
    page.goto("/admin/devices/tracker/")
    # The model catalogue comes from Navixy (the sandbox): refresh it first.
    with page.expect_navigation():
        page.click("form[action$='/refresh-catalogues/'] [type=submit]")
    page.goto("/admin/devices/tracker/register/?plugin=44")
    options = page.locator("select[name=model_code] option").all()
    assert len(options) > 1, "the Navixy model catalogue was loaded"
    page.select_option("select[name=model_code]", index=1)
    page.fill("input[name=label]", "Van 7")
    page.fill("input[name=device_id]", make_imei(77))
    if page.locator("input[name=phone]").count():
        page.fill("input[name=phone]", "4915112345678")
    shot(page, "journey-tracker-register-form")
    with page.expect_navigation():
        page.click("#tracker-register-form [type=submit]")
    errors = page.locator(".errorlist").all_inner_texts()
    assert not errors, f"form errors: {errors}"
    tracker = Tracker.objects.get(label="Van 7")
    tracker.refresh_from_db()
    assert tracker.navixy_tracker_id, "registered on the Navixy sandbox by the (eager) worker"
    page.reload()
    shot(page, "journey-tracker-registered")


def test_upload_a_termination_sheet(page, login, shot, make_user, vendors):
    import csv
    import io

    from devices.models import Device
    from ingestion.models import TerminationImportRun

    Device.objects.bulk_create([
        Device(serial=f"CX{n:010d}", product_id=10032, product_type="CustomDevice", erp_no="ERP100", status="active")
        for n in range(1, 4)
    ])
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["Serial Number", "Termination Date", "Reason", "ERP", "IMEI"])
    for serial in ("CX0000000001", "CX0000000002", "CX0000000099", "bad!"):
        writer.writerow([serial, timezone.now().strftime("%m/%d/%Y"), "Customer request", "ERP100", ""])
    user = make_user("billing")
    login(page, user)
    before = int(page.inner_text('[data-figure="terminations-14d"]'))

    page.goto("/admin/ingestion/terminationimportrun/add/")
    page.set_input_files("input[name=file]", files=[{"name": "terminations.csv", "mimeType": "text/csv",
                                                     "buffer": buf.getvalue().encode()}])
    with page.expect_navigation():
        page.click("input[name=_save]")
    # A worker imports it as a job: watch its progress, then the result with the bad row.
    assert _wait_for_job(page) == "Finished with failures"
    run = TerminationImportRun.objects.get()
    assert run.applied_count == 2 and run.invalid_count == 1
    failures = page.inner_text(".portal-job-failures")
    assert "row 5" in failures and "is not a serial number" in failures  # the bad row, in plain words
    assert page.inner_text(".portal-job [data-field=done]") == "3"
    shot(page, "journey-termination-import")
    with page.expect_navigation():
        page.click(f".portal-job-links a[href$='/terminationimportrun/{run.pk}/change/']")
    assert "is not a serial number" in page.content()  # the run's page lists it too
    assert Device.objects.filter(status="terminated").count() == 2

    page.goto("/admin/")
    assert int(page.inner_text('[data-figure="terminations-14d"]')) >= before + 2
    shot(page, "journey-dashboard-terminations")
