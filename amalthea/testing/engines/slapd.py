"""A private OpenLDAP ``slapd`` with a small test directory, for LDAP authenticator tests.

    with running_slapd() as ldap:      # LdapDirectory(url="ldap://127.0.0.1:PORT", ...)
        ...

The server gets its own cn=config (slapadd into a temp dir, never /etc/ldap), listens on
127.0.0.1 only, with ldap:// (StartTLS available) and ldaps:// on two free ports, using a
throw-away self-signed certificate. The ``memberof`` overlay is on, so users carry
``memberOf`` for the ``groupOfNames`` groups they are in. Directory, per engines.md §7:

    dc=hub,dc=test
      cn=admin            (rootdn, password ``ADMIN_PASSWORD``)
      ou=people           uid=<name> for each user (inetOrgPerson + posixAccount)
      ou=groups           cn=<group> groupOfNames
      cn=reader           a service account for search-then-bind
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amalthea.testing.engines.apt import EngineUnavailable, ensure_commands

BASE_DN = "dc=hub,dc=test"
ADMIN_DN = f"cn=admin,{BASE_DN}"
ADMIN_PASSWORD = "admin-pw"  # noqa: S105 - test directory only
READER_DN = f"cn=reader,{BASE_DN}"
READER_PASSWORD = "reader-pw"  # noqa: S105
PEOPLE = f"ou=people,{BASE_DN}"
GROUPS = f"ou=groups,{BASE_DN}"
SCHEMAS = ("core", "cosine", "nis", "inetorgperson")


@dataclass
class LdapDirectory:
    url: str
    ldaps_url: str
    ca_file: str
    state_dir: Path
    #: uid -> password
    users: dict[str, str] = field(default_factory=dict)
    #: group cn -> member uids
    groups: dict[str, list[str]] = field(default_factory=dict)

    def add_user(self, uid: str, password: str, groups: tuple[str, ...] = ()) -> None:
        """Add a person (and make them a member of ``groups``, created on demand)."""
        import ldap3

        with _admin(self.url) as conn:
            n = len(self.users) + 1
            ok = conn.add(
                f"uid={uid},{PEOPLE}", ["inetOrgPerson", "posixAccount"],
                {"cn": uid, "sn": uid, "uid": uid, "userPassword": password,
                 "uidNumber": 20000 + n, "gidNumber": 20000, "homeDirectory": f"/home/{uid}",
                 "mail": f"{uid}@hub.test"},
            )  # fmt: skip
            _check(conn, ok)
            for group in groups:
                dn = f"uid={uid},{PEOPLE}"
                if group in self.groups:
                    ok = conn.modify(f"cn={group},{GROUPS}", {"member": [(ldap3.MODIFY_ADD, [dn])]})
                else:
                    ok = conn.add(
                        f"cn={group},{GROUPS}", ["groupOfNames"], {"cn": group, "member": dn}
                    )
                _check(conn, ok)
                self.groups.setdefault(group, []).append(uid)
        self.users[uid] = password


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_slapd(state_dir: Path | None = None) -> Iterator[LdapDirectory]:
    """Start slapd with an empty ``dc=hub,dc=test`` tree; stop it and delete its state after."""
    ensure_commands({"slapd": "slapd", "slapadd": "slapd"})
    own_dir = state_dir is None
    state = Path(state_dir or tempfile.mkdtemp(prefix="amalthea-slapd-"))
    (state / "db").mkdir(parents=True, exist_ok=True)
    (state / "slapd.d").mkdir(exist_ok=True)
    cert, key = _self_signed(state)
    (state / "config.ldif").write_text(_config_ldif(state, cert, key))
    done = subprocess.run(
        ["slapadd", "-n", "0", "-F", str(state / "slapd.d"), "-l", str(state / "config.ldif")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise EngineUnavailable(f"slapadd of cn=config failed: {done.stderr[-2000:]}")
    port, tls_port = free_port(), free_port()
    url, ldaps_url = f"ldap://127.0.0.1:{port}", f"ldaps://127.0.0.1:{tls_port}"
    log = open(state / "slapd.log", "wb")  # closed in finally
    # Runs as root (no -u): the state dir and key then need no ownership changes.
    proc = subprocess.Popen(
        ["/usr/sbin/slapd", "-d", "0", "-F", str(state / "slapd.d"), "-h", f"{url}/ {ldaps_url}/"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_port(port, proc, state / "slapd.log")
        directory = LdapDirectory(url, ldaps_url, str(cert), state)
        _populate(url)
        yield directory
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        if own_dir:
            shutil.rmtree(state, ignore_errors=True)


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EngineUnavailable(
                f"slapd exited with {proc.returncode}: {log.read_text()[-2000:]}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise EngineUnavailable(
        f"slapd did not listen on {port} within 20 s: {log.read_text()[-2000:]}"
    )


@contextlib.contextmanager
def _admin(url: str) -> Iterator[Any]:
    import ldap3

    conn = ldap3.Connection(ldap3.Server(url), ADMIN_DN, ADMIN_PASSWORD, auto_bind=True)
    try:
        yield conn
    finally:
        conn.unbind()


def _check(conn: Any, ok: bool) -> None:
    if not ok:
        raise RuntimeError(f"LDAP write failed: {conn.result}")


def _populate(url: str) -> None:
    with _admin(url) as conn:
        for dn, classes, attrs in [
            (BASE_DN, ["dcObject", "organization"], {"dc": "hub", "o": "Hub test"}),
            (PEOPLE, ["organizationalUnit"], {"ou": "people"}),
            (GROUPS, ["organizationalUnit"], {"ou": "groups"}),
            (READER_DN, ["organizationalRole", "simpleSecurityObject"],
             {"cn": "reader", "userPassword": READER_PASSWORD}),
        ]:  # fmt: skip
            _check(conn, conn.add(dn, classes, attrs))


def _self_signed(state: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = state / "cert.pem", state / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_path, 0o600)
    return cert_path, key_path


def _config_ldif(state: Path, cert: Path, key: Path) -> str:
    schemas = "".join(f"include: file:///etc/ldap/schema/{s}.ldif\n\n" for s in SCHEMAS)
    return f"""\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {state}/slapd.pid
olcTLSCertificateFile: {cert}
olcTLSCertificateKeyFile: {key}
olcTLSCACertificateFile: {cert}

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb
olcModuleLoad: memberof

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{schemas}\
dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcDbDirectory: {state}/db
olcSuffix: {BASE_DN}
olcRootDN: {ADMIN_DN}
olcRootPW: {ADMIN_PASSWORD}
olcAccess: {{0}}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {{1}}to * by users read by * none

dn: olcOverlay={{0}}memberof,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {{0}}memberof
olcMemberOfGroupOC: groupOfNames
olcMemberOfMemberAD: member
olcMemberOfMemberOfAD: memberOf
"""
