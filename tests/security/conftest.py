"""Fixtures for the security checks: discovery helpers live in `discovery.py`; these fixtures
give each test the users, tokens and a "did anything change?" snapshot."""

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from tests.security.discovery import row_counts


@pytest.fixture
def keep_test_connection():
    """Requests sent straight to the WSGI application would close the database connection at
    the end of each request (Django's close_old_connections), which ends the test's
    transaction. Django's own test client detaches the same handlers for the same reason."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def snapshot():
    """snapshot() → row counts of every portal table; compare two to prove nothing changed."""
    return row_counts
