"""Celery runs tasks eagerly in-process unless a broker is configured (shop.settings, from the environment)."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBE = "import shop.settings as s; print(s.CELERY_TASK_ALWAYS_EAGER, repr(s.CELERY_BROKER_URL))"


def settings_probe(**env):
    environment = {key: value for key, value in os.environ.items() if key != "CELERY_BROKER_URL"}
    environment.update(env)
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=environment, capture_output=True,
                            text=True, timeout=60, check=True)
    return result.stdout.strip()


def test_without_a_broker_tasks_run_eagerly():
    assert settings_probe() == "True ''"


def test_with_a_broker_tasks_go_to_the_worker():
    assert settings_probe(CELERY_BROKER_URL="redis://127.0.0.1:6379/0") == "False 'redis://127.0.0.1:6379/0'"


def test_an_empty_broker_url_counts_as_none():
    assert settings_probe(CELERY_BROKER_URL="") == "True ''"
