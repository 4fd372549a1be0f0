"""A production-like portal on loopback, owned by the proof scripts: its own redis-server, its
own PostgreSQL database (`portal_proof`, dropped and recreated) reached through a TCP proxy that
can refuse connections on demand (proof/pgproxy.py), gunicorn with deploy/gunicorn.conf.py, several Celery workers
and one beat (through deploy/single_beat.py) — the same processes as deploy/Procfile.

It never touches anything it did not start: the shared PostgreSQL server only gets one database
created and dropped; faults are applied to the proxy, to this Redis and to these workers.

    with Stack(workers=2) as stack:
        stack.url            # http://127.0.0.1:<free port>
        stack.kill_worker(0) # SIGKILL; stack.start_worker(0) brings it back
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432"


def free_port(preferred: int | None = None) -> int:
    for candidate in ([preferred] if preferred else []) + [0]:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free loopback port")


def wait_until(what: str, check, *, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 — keep polling; report the last error
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready within {timeout:.0f}s (last error: {last!r})")


class Stack:
    def __init__(self, *, workers: int = 2, worker_concurrency: int = 2, web_workers: int = 4,
                 web_threads: int = 1, redis_port: int = 6390, db_name: str = "portal_proof",
                 pg_url: str | None = None, log_dir: Path | None = None, extra_env: dict | None = None,
                 use_proxy: bool = True, vendor_workers: int = 0):
        self.worker_count = workers
        self.worker_concurrency = worker_concurrency
        self.web_workers, self.web_threads = web_workers, web_threads
        self.redis_port = free_port(redis_port)
        self.db_name = db_name
        self.pg_url = (pg_url or os.environ.get("PROOF_PG_URL") or DEFAULT_PG).rstrip("/")
        self.log_dir = log_dir or ROOT / "var" / "proof" / "logs"
        self.var_dir = self.log_dir.parent / "state"
        self.extra_env = extra_env or {}
        self.web_port = free_port()
        self.url = f"http://127.0.0.1:{self.web_port}"
        self.use_proxy = use_proxy
        # vendor_workers > 0: the simulated vendors get a gunicorn of their own, as real vendors
        # are other machines; the portal's processes then serve the portal's requests alone.
        self.vendor_workers = vendor_workers
        self.vendor_port = free_port()
        self.vendor_url = f"http://127.0.0.1:{self.vendor_port}" if vendor_workers else self.url
        self.vendors: subprocess.Popen | None = None
        self.proxy_port = free_port()
        self.proxy: subprocess.Popen | None = None
        self.redis: subprocess.Popen | None = None
        self.web: subprocess.Popen | None = None
        self.beat: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen | None] = [None] * workers
        self._logs: list = []

    # ------------------------------------------------------------------ configuration
    def _pg_parts(self) -> dict:
        import environ

        cfg = environ.Env.db_url_config(f"{self.pg_url}/postgres")
        return {"host": cfg.get("HOST") or "127.0.0.1", "port": int(cfg.get("PORT") or 5432),
                "user": cfg.get("USER") or None, "password": cfg.get("PASSWORD") or None}

    @property
    def direct_database_url(self) -> str:
        return f"{self.pg_url}/{self.db_name}"

    @property
    def proxied_database_url(self) -> str:
        if not self.use_proxy:
            return self.direct_database_url
        parts = self._pg_parts()
        auth = parts["user"] or "postgres"
        if parts["password"]:
            auth += f":{parts['password']}"
        return f"postgres://{auth}@127.0.0.1:{self.proxy_port}/{self.db_name}"

    def env(self, *, direct_db: bool = False) -> dict:
        env = dict(os.environ)
        env.update({
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "SANDBOX": "1",
            "DEBUG": "0",
            "SECRET_KEY": self._secret_key,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "PORT": str(self.web_port),
            "PORTAL_BASE_URL": self.url,
            "SANDBOX_BASE_URL": self.vendor_url,
            "PORTAL_VAR_DIR": str(self.var_dir),
            "DATABASE_URL": self.direct_database_url if direct_db else self.proxied_database_url,
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "CACHE_URL": f"redis://127.0.0.1:{self.redis_port}/1",
            "GUNICORN_BIND": f"127.0.0.1:{self.web_port}",
            "WEB_CONCURRENCY": str(self.web_workers),
            "GUNICORN_THREADS": str(self.web_threads),
            "GUNICORN_ACCESS_LOG": "",  # 1000s of requests/s: the access log would cost CPU
            "CELERY_CONCURRENCY": str(self.worker_concurrency),
            "API_THROTTLE_USER": "10000000/min",
            "LOG_LEVEL": "WARNING",
            "HEARTBEAT_PERIOD_SECONDS": "5",
            "BEAT_LOCK_POLL_SECONDS": "1",
            # Short vendor timeouts: a commit-then-drop reply becomes "unknown" in seconds.
            "VENDOR_READ_TIMEOUT": "5",
        })
        env.update(self.extra_env)
        return env

    # ------------------------------------------------------------------ processes
    def _spawn(self, name: str, argv: list[str], *, env: dict | None = None) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 — closed in stop()
        self._logs.append(log)
        # A session of its own: the whole process group (gunicorn or celery and their children)
        # can be signalled without reaching anything else.
        return subprocess.Popen(argv, cwd=ROOT, env=env or self.env(), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def _manage(self, *args: str) -> None:
        subprocess.run([str(VENV_BIN / "python"), "manage.py", *args], cwd=ROOT,
                       env=self.env(direct_db=True), check=True, timeout=600,
                       stdout=subprocess.DEVNULL)

    def start_redis(self) -> None:
        self.redis = self._spawn("redis", [
            "redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port),
            "--save", "", "--appendonly", "no", "--protected-mode", "yes",
        ])
        import redis

        wait_until("redis", lambda: redis.Redis(port=self.redis_port, socket_timeout=1).ping(), timeout=15)

    def stop_redis(self) -> None:
        self._signal(self.redis, signal.SIGKILL)
        self.redis = None

    def restart_redis(self, down_seconds: float = 2.0) -> None:
        """Redis dies and comes back empty (no persistence): queued messages are lost, which is
        what the beat sweepers are for."""
        self.stop_redis()
        time.sleep(down_seconds)
        self.start_redis()

    def create_database(self) -> None:
        import psycopg

        with psycopg.connect(dbname="postgres", autocommit=True, **self._pg_parts()) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.db_name}"')

    def drop_database(self) -> None:
        import psycopg

        with psycopg.connect(dbname="postgres", autocommit=True, **self._pg_parts()) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')

    def refuse_database(self, seconds: float) -> None:
        """PostgreSQL "refuses connections" for `seconds`: the proxy stops listening and cuts
        every open connection, then listens again (proof/pgproxy.py)."""
        self.proxy.send_signal(signal.SIGUSR1)
        time.sleep(seconds)
        self.proxy.send_signal(signal.SIGUSR2)

    def _start_gunicorn(self, name: str, url: str, env: dict) -> subprocess.Popen:
        proc = self._spawn(name, [str(VENV_BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "portal.wsgi"],
                           env=env)
        wait_until(name, lambda: urllib.request.urlopen(f"{url}/api/schema/", timeout=5), timeout=60)
        return proc

    def start_web(self) -> None:
        self.web = self._start_gunicorn("web", self.url, self.env())

    def start_vendors(self) -> None:
        env = self.env()
        env.update({"GUNICORN_BIND": f"127.0.0.1:{self.vendor_port}", "PORT": str(self.vendor_port),
                    "WEB_CONCURRENCY": str(self.vendor_workers), "GUNICORN_THREADS": "1"})
        self.vendors = self._start_gunicorn("vendors", self.vendor_url, env)

    def start_worker(self, index: int) -> None:
        self.workers[index] = self._spawn(f"worker{index}", [
            str(VENV_BIN / "celery"), "-A", "portal", "worker", "--loglevel", "INFO",
            "--concurrency", str(self.worker_concurrency), "--hostname", f"proof{index}@%h",
            "--without-mingle", "--without-gossip",
        ])

    def kill_worker(self, index: int) -> None:
        """SIGKILL the worker's whole process group (the main process and its pool children):
        tasks it was running are cut short without a chance to clean up."""
        self._signal(self.workers[index], signal.SIGKILL)
        self.workers[index] = None

    def start_beat(self) -> None:
        self.beat = self._spawn("beat", [str(VENV_BIN / "python"), "deploy/single_beat.py"])

    def _signal(self, proc: subprocess.Popen | None, sig: int) -> None:
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Stack:
        self._secret_key = secrets.token_urlsafe(48)
        self.var_dir.mkdir(parents=True, exist_ok=True)
        for old in self.log_dir.glob("*.log"):  # one run's logs; restarts within it append
            old.unlink()
        if self.use_proxy:
            parts = self._pg_parts()
            self.proxy = self._spawn("pgproxy", [
                str(VENV_BIN / "python"), "proof/pgproxy.py", str(self.proxy_port),
                parts["host"], str(parts["port"])])
            wait_until("database proxy", lambda: socket.create_connection(
                ("127.0.0.1", self.proxy_port), timeout=1).close() or True, timeout=15)
        self.start_redis()
        self.create_database()
        self._manage("migrate", "--noinput", "-v", "0")
        self._manage("setup_periodic_tasks")
        self._manage("sandbox_seed")
        self.start_web()
        if self.vendor_workers:
            self.start_vendors()
        for i in range(self.worker_count):
            self.start_worker(i)
        self.start_beat()
        return self

    def stop(self) -> None:
        self._signal(self.beat, signal.SIGTERM)
        for i in range(self.worker_count):
            self._signal(self.workers[i], signal.SIGTERM)
        self._signal(self.web, signal.SIGTERM)
        self._signal(self.vendors, signal.SIGTERM)
        self.stop_redis()
        self._signal(self.proxy, signal.SIGTERM)
        for log in self._logs:
            log.close()

    def __enter__(self) -> Stack:  # noqa: PYI034
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ helpers
    def setup_django(self) -> None:
        """Django in this (orchestrating) process, on the proof database directly (not through
        the proxy), for seeding and for checking invariants."""
        os.environ.update(self.env(direct_db=True))
        # The orchestrator keeps no connection across faults it injects itself.
        os.environ["DB_CONN_MAX_AGE"] = "0"
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        import django

        django.setup()
