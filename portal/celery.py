"""The Celery app. Tasks are thin wrappers over services; see README "Background work"."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

# DjangoTask gives every task `delay_on_commit` / `apply_async_on_commit`.
app = Celery("portal", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# --- Request ids follow the work: a task inherits the id of the request (or task) that sent it,
# so the vendor-call ledger ties a user's click to every call it caused.
from celery.signals import before_task_publish, task_postrun, task_prerun  # noqa: E402

from portal.middleware import request_id_var  # noqa: E402

_task_tokens: dict[str, object] = {}


@before_task_publish.connect
def _stamp_request_id(headers=None, **_):
    if headers is not None and "request_id" not in headers:
        headers["request_id"] = request_id_var.get()


@task_prerun.connect
def _adopt_request_id(task_id=None, task=None, **_):
    rid = getattr(task.request, "request_id", None) or (task.request.headers or {}).get("request_id")
    _task_tokens[task_id] = request_id_var.set(rid or f"task-{task_id}")


@task_postrun.connect
def _drop_request_id(task_id=None, **_):
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        request_id_var.reset(token)
