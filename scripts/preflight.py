"""Check the configuration before starting the portal: one clear line per problem, no traceback.

Usage: python scripts/preflight.py   (exit 1 when DATABASE_URL or CELERY_BROKER_URL is unusable)
"""

import os
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def fail(message: str) -> None:
    print(f"preflight: {message}", file=sys.stderr)
    sys.exit(1)


def check_database(url: str) -> None:
    import environ

    try:
        config = environ.Env.db_url_config(url)
    except Exception as exc:
        fail(f"DATABASE_URL is not a valid database URL ({exc.__class__.__name__}: {exc}).")
    engine = config.get("ENGINE", "")
    if not engine:
        fail(f"DATABASE_URL scheme is not supported: {url.split(':', 1)[0]!r}.")
    if engine.endswith("postgresql"):
        try:
            import psycopg

            psycopg.connect(
                host=config.get("HOST") or None, port=config.get("PORT") or None,
                user=config.get("USER") or None, password=config.get("PASSWORD") or None,
                dbname=config.get("NAME"), connect_timeout=5,
            ).close()
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            fail(f"DATABASE_URL: cannot connect to PostgreSQL at {config.get('HOST')}:{config.get('PORT') or 5432} ({reason}).")
    elif engine.endswith("sqlite3"):
        name = config.get("NAME", "")
        if name and name != ":memory:" and not Path(name).parent.exists():
            try:
                Path(name).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                fail(f"DATABASE_URL: cannot create the SQLite directory for {name} ({exc.strerror}).")


def check_broker(url: str) -> None:
    if url.startswith("filesystem://"):
        return
    if not url.startswith(("redis://", "rediss://", "amqp://", "pyamqp://")):
        fail(f"CELERY_BROKER_URL scheme is not supported: {url.split(':', 1)[0]!r} (use redis://… or leave unset).")
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1, timeout=5)
    except Exception as exc:
        fail(f"CELERY_BROKER_URL: cannot connect to the broker at {url.split('@')[-1]} ({exc.__class__.__name__}).")


def main() -> None:
    warnings.simplefilter("ignore")
    var_dir = Path(os.environ.get("PORTAL_VAR_DIR", ROOT / "var"))
    check_database(os.environ.get("DATABASE_URL", f"sqlite:///{var_dir / 'portal.sqlite3'}"))
    check_broker(os.environ.get("CELERY_BROKER_URL", "filesystem://"))
    print("preflight: configuration OK")


if __name__ == "__main__":
    main()
