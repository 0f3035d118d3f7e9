"""`make setup` on a new machine: `manage.py migrate` must bring an empty database (no vector extension
yet) to a working schema, and `manage.py check --database default` must then be clean."""
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVER = "postgres://postgres@127.0.0.1:5432"


@pytest.fixture
def empty_database():
    name = f"fresh_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{SERVER}/{name}"
    finally:
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage(database_url, *args):
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "shop.settings"}
    env.pop("CELERY_BROKER_URL", None)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_migrate_builds_an_empty_database_and_checks_pass(empty_database):
    migrated = manage(empty_database, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    with psycopg.connect(empty_database) as conn:
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        assert version is not None
        assert conn.execute("SELECT to_regclass('recommender_detectedarticle')").fetchone()[0] is not None
    checked = manage(empty_database, "check", "--database", "default")
    assert checked.returncode == 0, checked.stdout + checked.stderr
