"""Run `celery beat` only while holding a PostgreSQL advisory lock, so at most one beat runs
across all machines even if the beat unit is enabled on two of them by mistake; the second one
waits as a hot standby and takes over within a few seconds when the first machine dies.

    python deploy/single_beat.py            (from the project root; reads DATABASE_URL)

On SQLite (a laptop) there is nothing to coordinate: it just runs beat.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK_KEY = 0x706F7274616C  # "portal": one fixed key per deployment database
POLL_SECONDS = float(os.environ.get("BEAT_LOCK_POLL_SECONDS", "5"))

BEAT = [
    str(Path(sys.executable).parent / "celery"), "-A", "portal", "beat",
    "--loglevel", os.environ.get("LOG_LEVEL", "INFO"),
    "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
    # The lock, not a pid file, guarantees a single beat; a stale pid file only blocks restarts.
    "--pidfile=",
]

_stop = False


def _on_signal(signum, frame):
    global _stop
    _stop = True


def log(message: str) -> None:
    print(f"single_beat: {message}", flush=True)


def _conninfo() -> dict | None:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return None
    sys.path.insert(0, str(ROOT))
    import environ

    cfg = environ.Env.db_url_config(url)
    return {"host": cfg.get("HOST") or None, "port": cfg.get("PORT") or None,
                "user": cfg.get("USER") or None, "password": cfg.get("PASSWORD") or None,
                "dbname": cfg.get("NAME"), "connect_timeout": 5,
                "application_name": "portal-beat-lock"}


def _stop_child(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def run_with_lock(conninfo: dict) -> int:
    import psycopg

    while not _stop:
        try:
            conn = psycopg.connect(autocommit=True, **conninfo)
        except psycopg.Error as exc:
            log(f"database unreachable ({type(exc).__name__}); retrying in {POLL_SECONDS:.0f}s")
            time.sleep(POLL_SECONDS)
            continue
        with conn:
            if not conn.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()[0]:
                log("another beat holds the lock; standing by")
                while not _stop and not conn.execute(
                    "SELECT pg_try_advisory_lock(%s)", [LOCK_KEY]
                ).fetchone()[0]:
                    time.sleep(POLL_SECONDS)
                if _stop:
                    return 0
            log("lock held; starting celery beat")
            child = subprocess.Popen(BEAT, cwd=ROOT)
            try:
                while not _stop and child.poll() is None:
                    time.sleep(POLL_SECONDS)
                    # The lock lives as long as this session: if the session is gone, another
                    # machine may already run beat, so ours must stop at once.
                    try:
                        conn.execute("SELECT 1")
                    except psycopg.Error:
                        log("lost the database session (and the lock); stopping beat")
                        break
            finally:
                _stop_child(child)
            if child.returncode not in (None, 0) and not _stop:
                log(f"celery beat exited with {child.returncode}; restarting")
    return 0


def main() -> int:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    conninfo = _conninfo()
    if conninfo is None:
        os.chdir(ROOT)
        os.execv(BEAT[0], BEAT)
    return run_with_lock(conninfo)


if __name__ == "__main__":
    sys.exit(main())
