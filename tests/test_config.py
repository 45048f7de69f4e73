"""Configuration: the environment picks the profile; production refuses to run half-configured."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from config import ConfigError, DevelopmentConfig, ProductionConfig, TestConfig, config_from_env

pytestmark = pytest.mark.sqlite_subset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(
    "name, expected",
    [("development", DevelopmentConfig), ("test", TestConfig), ("production", ProductionConfig)],
)
def test_clinicdesk_env_picks_the_config(monkeypatch, name, expected):
    monkeypatch.setenv("CLINICDESK_ENV", name)
    assert config_from_env() is expected


def test_unknown_environment_is_refused(monkeypatch):
    monkeypatch.setenv("CLINICDESK_ENV", "staging")
    with pytest.raises(ConfigError, match="CLINICDESK_ENV must be one of"):
        config_from_env()


def boot(env: dict[str, str]) -> subprocess.CompletedProcess:
    """Import run.py (what gunicorn does) in a fresh interpreter with exactly this environment."""
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"}}
    return subprocess.run(
        [sys.executable, "-c", "import run; print('booted', run.app.config['ENV_NAME'])"],
        env={**clean, **env}, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )


PRODUCTION = {
    "CLINICDESK_ENV": "production",
    "SECRET_KEY": "a-real-secret-from-the-environment",
    "REDIS_URL": "redis://127.0.0.1:6379/15",
}


@pytest.mark.parametrize("missing", ["SECRET_KEY", "DATABASE_URL", "REDIS_URL"])
def test_production_refuses_to_start_without(missing, database_url):
    env = {**PRODUCTION, "DATABASE_URL": database_url}
    del env[missing]
    result = boot(env)
    assert result.returncode != 0
    assert f"{missing} is not set" in result.stderr


def test_production_starts_with_the_three_variables(database_url):
    result = boot({**PRODUCTION, "DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    assert "booted production" in result.stdout


def test_development_keeps_its_own_secret_key(tmp_path):
    env = {"CLINICDESK_ENV": "development", "CLINICDESK_INSTANCE_DIR": str(tmp_path)}
    first = boot(env)
    assert first.returncode == 0, first.stderr
    key = (tmp_path / "secret_key").read_text()
    assert len(key) >= 32
    assert boot(env).returncode == 0
    assert (tmp_path / "secret_key").read_text() == key
