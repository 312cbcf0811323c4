"""A private MIT Kerberos KDC with a test realm, for Kerberos/SPNEGO authenticator tests.

    with running_kdc() as realm:        # KerberosRealm(name="HUB.TEST", keytab=..., ...)
        os.environ.update(realm.env)    # KRB5_CONFIG: the hub's libkrb5 now uses this realm
        realm.add_user("alice", "pw")
        ccache = realm.kinit("alice", "pw")

Everything lives in a temp dir: krb5.conf, kdc.conf, the database, the service keytab.
The KDC listens on 127.0.0.1 (UDP and TCP, one free port). The host's /etc/krb5.conf is not
touched; processes opt in through ``KRB5_CONFIG``/``KRB5_KDC_PROFILE`` (``realm.env``).
A second realm ``DOWN.TEST`` points at a closed port, to test "KDC unreachable".
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from amalthea.testing.engines.apt import EngineUnavailable, ensure_commands

REALM = "HUB.TEST"
DOWN_REALM = "DOWN.TEST"
SERVICE = f"HTTP/hub.test@{REALM}"


@dataclass
class KerberosRealm:
    name: str
    port: int
    state_dir: Path
    keytab: str
    service_principal: str
    env: dict[str, str]

    def kadmin(self, query: str) -> str:
        done = subprocess.run(
            ["/usr/sbin/kadmin.local", "-r", self.name, "-q", query],
            env={**os.environ, **self.env}, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0 or "error" in done.stderr.lower():
            raise RuntimeError(f"kadmin.local {query!r} failed: {done.stdout}{done.stderr}")
        return done.stdout

    def add_user(self, name: str, password: str) -> None:
        self.kadmin(f"addprinc -pw {password} {name}")

    def kinit(self, name: str, password: str) -> str:
        """Get a TGT like a person would; return the ccache path (``FILE:...``)."""
        ccache = f"FILE:{self.state_dir}/cc_{name}"
        done = subprocess.run(
            ["kinit", f"{name}@{self.name}"], input=password + "\n",
            env={**os.environ, **self.env, "KRB5CCNAME": ccache},
            capture_output=True, text=True, check=False, timeout=30,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"kinit {name} failed: {done.stderr}")
        return ccache


def _free_port() -> int:
    """A port free for both TCP and UDP (the KDC listens on both)."""
    for _ in range(50):
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise EngineUnavailable("no free port for the KDC")


@contextlib.contextmanager
def running_kdc() -> Iterator[KerberosRealm]:
    ensure_commands(
        {"krb5kdc": "krb5-kdc", "kadmin.local": "krb5-admin-server", "kinit": "krb5-user"}
    )
    state = Path(tempfile.mkdtemp(prefix="amalthea-krb5-"))
    port, dead_port = _free_port(), _free_port()
    (state / "krb5.conf").write_text(
        f"""[libdefaults]
  default_realm = {REALM}
  dns_lookup_kdc = false
  dns_lookup_realm = false
  dns_canonicalize_hostname = false
  rdns = false
  udp_preference_limit = 1
  default_ccache_name = FILE:{state}/cc_default
[realms]
  {REALM} = {{
    kdc = 127.0.0.1:{port}
  }}
  {DOWN_REALM} = {{
    kdc = 127.0.0.1:{dead_port}
  }}
[domain_realm]
  hub.test = {REALM}
"""
    )
    (state / "kdc.conf").write_text(
        f"""[kdcdefaults]
  kdc_tcp_listen = 127.0.0.1:{port}
  kdc_listen = 127.0.0.1:{port}
[realms]
  {REALM} = {{
    database_name = {state}/principal
    key_stash_file = {state}/stash
    acl_file = {state}/kadm5.acl
    supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
  }}
[logging]
  kdc = FILE:{state}/kdc.log
"""
    )
    (state / "kadm5.acl").write_text("")
    env = {"KRB5_CONFIG": str(state / "krb5.conf"), "KRB5_KDC_PROFILE": str(state / "kdc.conf")}
    full_env = {**os.environ, **env}
    done = subprocess.run(
        ["/usr/sbin/kdb5_util", "create", "-s", "-r", REALM, "-P", "master-pw-for-tests"],
        env=full_env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        shutil.rmtree(state, ignore_errors=True)
        raise EngineUnavailable(f"kdb5_util create failed: {done.stderr}")
    keytab = str(state / "http.keytab")
    realm = KerberosRealm(REALM, port, state, keytab, SERVICE, env)
    realm.kadmin(f"addprinc -randkey {SERVICE}")
    realm.kadmin(f"ktadd -k {keytab} {SERVICE}")
    proc = subprocess.Popen(
        ["/usr/sbin/krb5kdc", "-n", "-r", REALM, "-P", str(state / "kdc.pid")],
        env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_tcp(port, proc, state)
        yield realm
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(state, ignore_errors=True)


def _wait_tcp(port: int, proc: subprocess.Popen[bytes], state: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = (state / "kdc.log").read_text() if (state / "kdc.log").exists() else ""
            raise EngineUnavailable(f"krb5kdc exited with {proc.returncode}: {log[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise EngineUnavailable(f"krb5kdc did not listen on {port} within 20 s")
