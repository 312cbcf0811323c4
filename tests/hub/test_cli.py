"""The amalthea command: --version, --help, --generate-config, upgrade-db, config errors."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from amalthea import __version__


def run(tmp_path, *args, config: str | None = None, timeout: float = 60):
    if config is not None:
        (tmp_path / "amalthea_config.py").write_text(config)
    return subprocess.run(
        [sys.executable, "-m", "amalthea.cli", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_version_and_help(tmp_path):
    r = run(tmp_path, "--version")
    assert r.returncode == 0 and r.stdout.strip() == __version__
    r = run(tmp_path, "--help")
    assert r.returncode == 0
    assert "Authenticators installed:" in r.stdout and "local" in r.stdout and "dummy" in r.stdout
    assert "Spawners installed:" in r.stdout and "local-shared" in r.stdout
    assert "Proxies installed: amalthea, chp" in r.stdout


def test_generate_config(tmp_path):
    r = run(tmp_path, "--generate-config")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "amalthea_config.py").read_text()
    assert "# c.Amalthea.bind_url" in text and "c.Spawner.cmd" in text
    r = run(tmp_path, "--generate-config")
    assert r.returncode == 2 and "exists" in r.stderr


def test_upgrade_db_creates_schema(tmp_path):
    r = run(tmp_path, "upgrade-db")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "amalthea.sqlite").exists()
    assert "current schema" in r.stdout


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            'c.Amalthea.bind_ur = "x"',
            "Unknown setting c.Amalthea.bind_ur (value 'x'). Did you mean c.Amalthea.bind_url",
        ),
        ('c.Spawner.start_timeout = "soon"', "Invalid setting c.Spawner.start_timeout = 'soon'"),
        (
            'c.Amalthea.spawner_class = "nosuch"',
            "Invalid setting c.Amalthea.spawner_class = 'nosuch': No amalthea.spawners plugin called 'nosuch'. Installed:",
        ),
        (
            'c.Amalthea.authenticator_class = "dummy"\nc.DummyAuthenticator.pasword = "x"',
            "Did you mean c.DummyAuthenticator.password?",
        ),
        (
            'c.Amalthea.cookie_max_age_days = "long"',
            "Invalid setting c.Amalthea.cookie_max_age_days = 'long'",
        ),
    ],
)
def test_config_errors_name_key_value_and_choices(tmp_path, config, expected):
    r = run(tmp_path, config=config)
    assert r.returncode == 2
    assert expected in r.stderr
    assert "Traceback" not in r.stderr


def test_secrets_file_is_private_and_checked(tmp_path):
    from amalthea.hub.security.secrets_file import SecretsFileError, load_or_create

    path = tmp_path / "s.json"
    first = load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create(path).cookie_secret == first.cookie_secret
    os.chmod(path, 0o644)
    with pytest.raises(SecretsFileError, match="chmod 600"):
        load_or_create(path)


def test_safe_next():
    from amalthea.hub.security.redirects import safe_next

    assert safe_next("/hub/home") == "/hub/home"
    assert safe_next("/user/a/lab?x=1") == "/user/a/lab?x=1"
    for bad in (
        "https://evil.example/",
        "//evil.example",
        "/\\evil.example",
        "javascript:alert(1)",
        "evil",
        "/x\r\nSet-Cookie: a=b",
        "",
    ):
        assert safe_next(bad) is None, bad
    assert safe_next("/other/x", "/base/") is None


def test_state_machine():
    from amalthea.hub.lifecycle.states import IllegalTransition, ServerState, check

    assert check(ServerState.STOPPED, ServerState.PENDING) is ServerState.PENDING
    assert check(ServerState.PENDING, ServerState.FAILED) is ServerState.FAILED
    with pytest.raises(IllegalTransition):
        check(ServerState.STOPPED, ServerState.RUNNING)
    assert (
        ServerState.PENDING.pending_label == "spawn" and ServerState.RUNNING.pending_label is None
    )


def test_migrate_head_constant_matches_alembic():
    from amalthea.hub.store.migrate import HEAD, head_revision

    assert head_revision() == HEAD
