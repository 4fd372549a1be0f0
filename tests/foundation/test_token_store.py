"""The shared token store: one login for many concurrent renewals, no transaction held open."""

import threading
import time

import pytest
from django.db import connection

from integrations.base import SharedCredential
from portal.models import VendorToken
from portal.vendor import DatabaseTokenStore

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_renewals_log_in_once():
    logins = []

    def login():
        logins.append(1)
        time.sleep(0.2)  # a slow vendor login: the others must wait, not log in too
        return {"session": len(logins)}

    cred = SharedCredential(DatabaseTokenStore(), "vendor:test", login=login)
    results = []

    def worker():
        try:
            results.append(cred.renew(None))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(logins) == 1
    assert results == [{"session": 1}] * 4
    assert VendorToken.objects.get(key="vendor:test").value == {"session": 1}


def test_no_transaction_is_open_while_the_lock_is_held():
    with DatabaseTokenStore().lock("vendor:test") as current:
        assert current is None
        assert not connection.in_atomic_block
        # Other writers can commit meanwhile (a failed login's ledger row must survive).
        VendorToken.objects.create(key="other", value={"x": 1})
    assert VendorToken.objects.filter(key="other").exists()
