#!/usr/bin/env bash
# `make run-prod-like`: the production processes of deploy/Procfile (gunicorn with
# deploy/gunicorn.conf.py, two Celery workers, one beat behind deploy/single_beat.py) on
# PostgreSQL + Redis, on this machine. Ctrl-C stops them all.
#
# Defaults: DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_prodlike (created if missing),
# CELERY_BROKER_URL / CACHE_URL on the local Redis (databases 2 and 3), SANDBOX=1, PORT=8000.
# Override any of them in the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

export PORT="${PORT:-8000}"
export SANDBOX="${SANDBOX:-1}"
export DEBUG="${DEBUG:-0}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/portal_prodlike}"
export CELERY_BROKER_URL="${CELERY_BROKER_URL:-redis://127.0.0.1:6379/2}"
export CACHE_URL="${CACHE_URL:-redis://127.0.0.1:6379/3}"
export GUNICORN_BIND="${GUNICORN_BIND:-127.0.0.1:$PORT}"
# honcho gives every process its own PORT (web 8000, worker 8100, …): the workers must still
# reach the web process (the sandbox lives there), so the base URL is fixed here.
export PORTAL_BASE_URL="${PORTAL_BASE_URL:-http://127.0.0.1:$PORT}"
export WEB_CONCURRENCY="${WEB_CONCURRENCY:-3}"
# The sandbox is served by this same pool, and some requests call a vendor over HTTP (the
# termination reasons, a customer database test): with threads, a request waiting on the
# sandbox never holds the last free worker. Production's vendors are elsewhere: sync workers.
export GUNICORN_THREADS="${GUNICORN_THREADS:-4}"
export CELERY_CONCURRENCY="${CELERY_CONCURRENCY:-2}"

case "$DATABASE_URL" in
  postgres://*|postgresql://*)
    # Create the database on first use (the server itself is not ours to manage).
    $BIN/python - <<'PY'
import os, environ, psycopg
cfg = environ.Env.db_url_config(os.environ["DATABASE_URL"])
conninfo = dict(host=cfg.get("HOST") or None, port=cfg.get("PORT") or None,
                user=cfg.get("USER") or None, password=cfg.get("PASSWORD") or None, connect_timeout=5)
try:
    with psycopg.connect(dbname="postgres", autocommit=True, **conninfo) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]]).fetchone():
            conn.execute(f'CREATE DATABASE "{cfg["NAME"]}"')
except psycopg.Error as exc:
    print(f"run-prod-like: PostgreSQL is not reachable ({str(exc).strip().splitlines()[0]})")
    raise SystemExit(1)
PY
    ;;
  *) echo "run-prod-like: DATABASE_URL must point at PostgreSQL (got ${DATABASE_URL%%:*})" >&2; exit 1 ;;
esac

$BIN/python scripts/preflight.py
$BIN/python manage.py migrate --noinput -v 0
$BIN/python manage.py setup_periodic_tasks
$BIN/python manage.py demo_setup
if [ "$SANDBOX" = "1" ] || [ "$SANDBOX" = "true" ]; then $BIN/python manage.py sandbox_seed; fi
$BIN/python manage.py collectstatic --noinput -v 0
echo "Portal (gunicorn + 2 workers + beat on PostgreSQL/Redis): http://127.0.0.1:$PORT/admin/   Health: http://127.0.0.1:$PORT/health/"
exec $BIN/honcho -f deploy/Procfile start -c worker=2
