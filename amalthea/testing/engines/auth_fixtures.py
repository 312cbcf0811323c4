"""pytest fixtures for identity systems (import them into a test module or conftest.py).

    from amalthea.testing.engines.auth_fixtures import slapd_directory  # noqa: F401

- ``slapd_directory``: a private slapd (session) with alice (groups admins, staff), bob
  (staff) and carol (no group); passwords ``<name>-pw``.
- ``kerberos_realm``: a private KDC (session), ``KRB5_CONFIG`` pointed at it for the session,
  user principal alice / ``alice-pw``, service keytab for ``HTTP/hub.test@HUB.TEST``.
- ``pam_test_service``: a PAM service file with ``nodelay`` (failed logins answer at once).
- ``silent_tcp_port``: a TCP port that accepts connections and never answers (a hung server).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from amalthea.testing.engines.apt import EngineUnavailable

PAM_DIR = Path("/etc/pam.d")


@pytest.fixture(scope="session")
def slapd_directory() -> Iterator[object]:
    from amalthea.testing.engines.slapd import running_slapd

    try:
        with running_slapd() as directory:
            directory.add_user("alice", "alice-pw", ("admins", "staff"))
            directory.add_user("bob", "bob-pw", ("staff",))
            directory.add_user("carol", "carol-pw")
            yield directory
    except EngineUnavailable as e:
        pytest.skip(f"slapd unavailable: {e}")


@pytest.fixture(scope="session")
def kerberos_realm() -> Iterator[object]:
    from amalthea.testing.engines.krb5 import running_kdc

    try:
        with running_kdc() as realm:
            realm.add_user("alice", "alice-pw")
            saved = {key: os.environ.get(key) for key in realm.env}
            os.environ.update(realm.env)  # libkrb5 in this process reads KRB5_CONFIG per call
            try:
                yield realm
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
    except EngineUnavailable as e:
        pytest.skip(f"Kerberos KDC unavailable: {e}")


@pytest.fixture(scope="session")
def pam_test_service() -> Iterator[str]:
    """Name of a throw-away PAM service: pam_unix with nodelay, removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("writing a PAM service file needs root")
    name = f"amalthea-test-{secrets.token_hex(4)}"
    path = PAM_DIR / name
    path.write_text(
        "auth required pam_unix.so nodelay\n"
        "account required pam_unix.so\n"
        "session required pam_unix.so\n"
    )
    try:
        yield name
    finally:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def silent_tcp_server() -> Iterator[int]:
    """Accept TCP connections on 127.0.0.1 and never send a byte (a hung LDAP server/KDC)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, name="silent-tcp", daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        listener.close()


@pytest.fixture
def silent_tcp_port() -> Iterator[int]:
    with silent_tcp_server() as port:
        yield port
