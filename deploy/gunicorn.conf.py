"""gunicorn settings for the portal's web process; every value can be overridden from the
environment so one file serves a laptop, `make run-prod-like` and production machines.

    gunicorn -c deploy/gunicorn.conf.py portal.wsgi
"""

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


# Bind to loopback by default: production puts a TLS-terminating proxy (nginx, a load
# balancer) in front and sets GUNICORN_BIND to the address that proxy reaches.
bind = os.environ.get("GUNICORN_BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")

# Sync workers, one request at a time per process: requests are short and CPU-bound (vendor
# calls run in Celery, never in a request), and threads in one process share its GIL. A sync
# worker keeps no connection open between requests, so every request queues at the shared
# accept(), first come first served. With keep-alive (gthread) a client stays with the process
# that accepted it, processes end up with uneven numbers of clients, and the unlucky clients
# wait longest: under 50 clients on 2 cores the read p95 was 280-360 ms with gthread (4 x 1,
# keep-alive) and 260-270 ms with 4 sync workers, at a p99 of 340-440 against 290-320 ms.
# Slow clients are the TLS proxy's to buffer (it must be in front anyway).
# GUNICORN_THREADS above 1 makes gunicorn use gthread whatever the class says.
workers = _int("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1)
threads = _int("GUNICORN_THREADS", 1)
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")

# A request that takes longer than this is stuck: kill the worker, not the machine.
timeout = _int("GUNICORN_TIMEOUT", 60)
# On SIGTERM/HUP, in-flight requests get this long to finish (deploys drop no request).
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)  # gthread only

# Recycle workers now and then so a slow leak never becomes an outage; the jitter keeps them
# from all restarting at once. Not too often: a new worker imports the portal again (about 2 s
# of CPU measured here), so at 300 requests/s a recycle every 2,000 requests cost 15% of a
# 2-core machine, and the first requests on a fresh worker are slow ones.
max_requests = _int("GUNICORN_MAX_REQUESTS", 20000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 2000)

# Refuse absurd request lines/headers before Django sees them.
limit_request_line = 8190
limit_request_fields = 100

# Trust X-Forwarded-* only from the proxy in front (comma-separated addresses).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # empty: no access log
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# No query strings in the access log: API filters can carry customer identifiers.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms rid=%({x-request-id}o)s'

proc_name = "portal-web"

# gunicorn's control socket defaults to one per-user path, so two gunicorns of one user (a
# prod-like run beside the proof stack, two sites on a host) would fight over it; under
# systemd, HUP/TERM do the same job. Set GUNICORN_CONTROL_SOCKET (e.g. /run/portal-web/gunicorn.ctl)
# to get `gunicornc` back.
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")
if os.environ.get("GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
