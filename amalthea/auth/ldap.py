"""``ldap``: check passwords by binding to an LDAP directory (OpenLDAP, 389-ds, AD) with ldap3.

Two ways to find the person's DN:
- ``bind_dn_templates``: try ``uid={username},ou=people,dc=example,dc=org`` (several allowed);
- ``lookup_dn``: bind as a service account (or anonymously), search ``user_search_base`` with
  ``user_search_filter``, then bind as the DN found (search-then-bind).

Groups come from the user's ``memberOf`` attribute or from a search under
``group_search_base`` (``group_lookup``); ``admin_groups``/``allowed_groups`` in the base class
then apply to those names.

An LDAP server that is down or hangs must not hang the hub: ldap3 is synchronous, so every
login runs in a private thread pool (see :mod:`amalthea.auth._blocking`) with ldap3's own
connect/receive timeouts and an overall deadline (``timeout``). When no server answers the
person is told the login service is unreachable and the log names each URL and its error.

Values typed by the person are escaped before they go into a DN (RFC 4514) or a filter
(RFC 4515), and empty passwords are refused before any bind: LDAP treats a simple bind with
a DN and no password as an anonymous bind, which "succeeds".
"""

from __future__ import annotations

import math
import ssl
from dataclasses import dataclass
from typing import Any

from traitlets import Bool, Enum, Float, List, TraitError, Unicode, validate

from amalthea.auth._blocking import BlockingRunner
from amalthea.auth._refusals import logs_refusals
from amalthea.auth.base import Authenticator, AuthError, AuthResult, LoginRequest

try:
    import ldap3
    from ldap3.core.exceptions import LDAPCommunicationError, LDAPException, LDAPStartTLSError
    from ldap3.utils.conv import escape_filter_chars
    from ldap3.utils.dn import escape_rdn, parse_dn
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError(
        f"the ldap authenticator needs ldap3: pip install 'amalthea[ldap]' ({e})"
    ) from e

__all__ = ["LDAPAuthenticator"]

UNREACHABLE = "The login service is unreachable, try again later."


class _Unreachable(Exception):
    """No configured server could be talked to; the message lists each URL and error."""


class _Misconfigured(Exception):
    """The directory answered but refused the hub's own configuration (service bind, search)."""


@dataclass
class _Found:
    dn: str
    attributes: dict[str, list[str]]


class LDAPAuthenticator(Authenticator):
    server_urls = List(
        Unicode(),
        help="LDAP servers, tried in order: 'ldap://host:389' or 'ldaps://host:636'.",
    ).tag(config=True)
    starttls = Bool(False, help="Upgrade ldap:// connections with StartTLS before binding.").tag(
        config=True
    )
    tls_verify = Bool(
        True, help="Check the server's TLS certificate (LDAPS and StartTLS). Only disable in tests."
    ).tag(config=True)
    tls_ca_file = Unicode("", help="CA bundle for the server certificate; empty: system CAs.").tag(
        config=True
    )
    bind_dn_templates = List(
        Unicode(),
        help="DN templates to bind with, '{username}' replaced by the escaped login name, e.g. "
        "['uid={username},ou=people,dc=example,dc=org'].",
    ).tag(config=True)
    lookup_dn = Bool(
        False, help="Search for the user's DN first (search-then-bind) instead of templates."
    ).tag(config=True)
    search_bind_dn = Unicode(
        "", help="Service account DN for lookup_dn and group searches; empty binds anonymously."
    ).tag(config=True)
    search_bind_password = Unicode("", help="Password of search_bind_dn.").tag(config=True)
    user_search_base = Unicode(
        "", help="Where lookup_dn searches, e.g. 'ou=people,dc=example,dc=org'."
    ).tag(config=True)
    user_search_filter = Unicode(
        "(uid={username})",
        help="Filter for lookup_dn; '{username}' is the escaped login name. E.g. "
        "'(&(objectClass=person)(sAMAccountName={username}))' for Active Directory.",
    ).tag(config=True)
    username_attribute = Unicode(
        "",
        help="Attribute whose value becomes the hub username (e.g. 'uid'); empty: the name typed.",
    ).tag(config=True)
    group_lookup = Enum(
        ["auto", "memberof", "search", "none"],
        "auto",
        help="Where groups come from: the user's memberOf attribute, a search under "
        "group_search_base, or not at all. 'auto' searches if group_search_base is set, else "
        "reads memberOf.",
    ).tag(config=True)
    memberof_attribute = Unicode("memberOf", help="User attribute listing group DNs.").tag(
        config=True
    )
    group_search_base = Unicode(
        "", help="Where groups are searched, e.g. 'ou=groups,dc=example,dc=org'."
    ).tag(config=True)
    group_search_filter = Unicode(
        "(|(member={user_dn})(uniqueMember={user_dn})(memberUid={username}))",
        help="Filter for group search; '{user_dn}' and '{username}' are escaped.",
    ).tag(config=True)
    group_name_attribute = Unicode("cn", help="Group attribute used as the group name.").tag(
        config=True
    )
    connect_timeout = Float(5.0, help="Seconds to open a connection to one LDAP server.").tag(
        config=True
    )
    receive_timeout = Float(
        10.0,
        help="Seconds to wait for one LDAP answer before the server counts as hung (whole "
        "seconds, rounded up).",
    ).tag(config=True)
    timeout = Float(
        15.0, help="Upper bound in seconds for a whole login, all servers and searches included."
    ).tag(config=True)

    @validate("bind_dn_templates")
    def _check_templates(self, proposal: dict[str, Any]) -> list[str]:
        for template in proposal["value"]:
            if "{username}" not in template:
                raise TraitError(
                    f"LDAPAuthenticator.bind_dn_templates: {template!r} has no '{{username}}'"
                )
        return list(proposal["value"])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._runner = BlockingRunner("ldap", max_workers=8)

    async def startup(self) -> None:
        if not self.server_urls:
            raise ValueError(
                "LDAPAuthenticator.server_urls is empty: set it, e.g. ['ldaps://ldap.example.org']."
            )
        for url in self.server_urls:
            if not url.startswith(("ldap://", "ldaps://")):
                raise ValueError(
                    f"LDAPAuthenticator.server_urls: {url!r} must start with ldap:// or ldaps://"
                )
        if self.lookup_dn and not self.user_search_base:
            raise ValueError("LDAPAuthenticator.lookup_dn needs user_search_base.")
        if not self.lookup_dn and not self.bind_dn_templates:
            raise ValueError(
                "LDAPAuthenticator needs bind_dn_templates, or lookup_dn = True with "
                "user_search_base, to find the user's DN."
            )
        if self._groups_mode() == "none" and (self.admin_groups or self.allowed_groups):
            raise ValueError(
                "LDAPAuthenticator.admin_groups/allowed_groups are set but group_lookup is "
                "'none': no groups would ever match."
            )

    def _groups_mode(self) -> str:
        if self.group_lookup == "auto":
            return "search" if self.group_search_base else "memberof"
        return str(self.group_lookup)

    @logs_refusals
    async def authenticate(self, request: LoginRequest) -> AuthResult | None:
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        if not username or not password:
            return None  # never send an empty password: it would be an anonymous bind
        try:
            return await self._runner.run(self.timeout, self._login, username, password)
        except TimeoutError:
            raise AuthError(
                UNREACHABLE,
                log_message=f"LDAP login of {username!r} did not finish within {self.timeout:g} s "
                f"(servers {', '.join(self.server_urls)}): the directory is hung or overloaded",
                status=503,
            ) from None
        except _Unreachable as e:
            raise AuthError(UNREACHABLE, log_message=str(e), status=503) from e
        except _Misconfigured as e:
            raise AuthError(
                "The login service is misconfigured. Tell the hub's administrator.",
                log_message=str(e),
                status=503,
            ) from e

    # ---- blocking part, runs in a worker thread ---------------------------------------------
    def _login(self, username: str, password: str) -> AuthResult | None:
        errors = []
        for url in self.server_urls:
            try:
                return self._login_on(url, username, password)
            except (LDAPCommunicationError, LDAPStartTLSError, ssl.SSLError, OSError) as e:
                self.log.warning("LDAP server %s unreachable: %s: %s", url, type(e).__name__, e)
                errors.append(f"{url}: {type(e).__name__}: {e}")
        raise _Unreachable("no LDAP server answered: " + "; ".join(errors))

    def _server(self, url: str) -> ldap3.Server:
        tls = ldap3.Tls(
            validate=ssl.CERT_REQUIRED if self.tls_verify else ssl.CERT_NONE,
            ca_certs_file=self.tls_ca_file or None,
        )
        return ldap3.Server(url, tls=tls, connect_timeout=self.connect_timeout, get_info=ldap3.NONE)

    def _connect(
        self, server: ldap3.Server, dn: str | None, password: str | None
    ) -> ldap3.Connection:
        """An opened (not yet bound) connection, upgraded with StartTLS when asked."""
        conn = ldap3.Connection(
            server, user=dn, password=password, receive_timeout=math.ceil(self.receive_timeout),  # ldap3 packs it as an int
            read_only=True, raise_exceptions=False,
        )  # fmt: skip
        conn.open()
        if self.starttls and not server.ssl and not conn.start_tls():
            raise LDAPStartTLSError(f"StartTLS refused: {conn.result.get('description')}")
        return conn

    def _login_on(self, url: str, username: str, password: str) -> AuthResult | None:
        server = self._server(url)
        service = None
        if self.lookup_dn or self.search_bind_dn:
            service = self._connect(server, self.search_bind_dn or None, self.search_bind_password)
            if not service.bind():
                raise _Misconfigured(
                    f"LDAP server {url}: the search account {self.search_bind_dn or '(anonymous)'!r} "
                    f"cannot bind: {service.result.get('description')} "
                    f"{service.result.get('message', '')}"
                )
        try:
            if self.lookup_dn:
                assert service is not None
                found = self._search_user(service, url, username)
                if found is None:
                    return None
                user_conn = self._bind_as(server, found.dn, password)
            else:
                found, user_conn = self._bind_templates(server, username, password)
            if user_conn is None or found is None:
                self.log.info("LDAP %s: bind refused for %r", url, username)
                return None
            try:
                if not self.lookup_dn:
                    found = self._read_entry(user_conn, found.dn)
                groups = self._groups(service or user_conn, found, username)
            finally:
                user_conn.unbind()
        finally:
            if service is not None:
                service.unbind()
        name = username
        if self.username_attribute:
            values = found.attributes.get(self.username_attribute.lower()) or [username]
            name = str(values[0])
        # admin follows the directory's groups when admin_groups is set (so leaving the group
        # revokes it); otherwise the hub keeps whatever admin flag it has (None).
        admin = False if self.admin_groups and groups is not None else None
        return AuthResult(name=name, groups=groups, admin=admin, user_info={"dn": found.dn})

    def _bind_as(self, server: ldap3.Server, dn: str, password: str) -> ldap3.Connection | None:
        conn = self._connect(server, dn, password)
        if conn.bind():
            return conn
        conn.unbind()
        return None

    def _bind_templates(
        self, server: ldap3.Server, username: str, password: str
    ) -> tuple[_Found | None, ldap3.Connection | None]:
        for template in self.bind_dn_templates:
            dn = template.format(username=escape_rdn(username))
            conn = self._bind_as(server, dn, password)
            if conn is not None:
                return _Found(dn, {}), conn
        return None, None

    def _attributes(self) -> list[str]:
        wanted = {self.username_attribute} - {""}
        if self._groups_mode() == "memberof":
            wanted.add(self.memberof_attribute)
        return sorted(wanted) or [ldap3.NO_ATTRIBUTES]

    def _search_user(self, conn: ldap3.Connection, url: str, username: str) -> _Found | None:
        query = self.user_search_filter.format(username=escape_filter_chars(username))
        conn.search(self.user_search_base, query, ldap3.SUBTREE, attributes=self._attributes())
        entries = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
        if not _search_ok(conn):
            raise _Misconfigured(
                f"LDAP server {url}: user search {query!r} under {self.user_search_base!r} failed: "
                f"{conn.result.get('description')} {conn.result.get('message', '')}"
            )
        if len(entries) != 1:
            self.log.info("LDAP %s: %d entries match %s, refusing", url, len(entries), query)
            return None
        return _Found(entries[0]["dn"], _plain(entries[0].get("attributes", {})))

    def _read_entry(self, conn: ldap3.Connection, dn: str) -> _Found:
        attrs = self._attributes()
        if attrs == [ldap3.NO_ATTRIBUTES]:
            return _Found(dn, {})
        conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=attrs)
        for entry in conn.response or []:
            if entry.get("type") == "searchResEntry":
                return _Found(dn, _plain(entry.get("attributes", {})))
        return _Found(dn, {})

    def _groups(self, conn: ldap3.Connection, found: _Found, username: str) -> list[str] | None:
        mode = self._groups_mode()
        if mode == "none":
            return None
        if mode == "memberof":
            return sorted(
                {_rdn_value(dn) for dn in found.attributes.get(self.memberof_attribute.lower(), [])}
            )
        query = self.group_search_filter.format(
            user_dn=escape_filter_chars(found.dn), username=escape_filter_chars(username)
        )
        conn.search(
            self.group_search_base, query, ldap3.SUBTREE, attributes=[self.group_name_attribute]
        )
        if not _search_ok(conn):
            raise _Misconfigured(
                f"LDAP group search {query!r} under {self.group_search_base!r} failed: "
                f"{conn.result.get('description')} {conn.result.get('message', '')}"
            )
        names = set()
        for entry in conn.response or []:
            if entry.get("type") == "searchResEntry":
                names.update(
                    _plain(entry.get("attributes", {})).get(self.group_name_attribute.lower(), [])
                )
        return sorted(names)


def _search_ok(conn: ldap3.Connection) -> bool:
    # noSuchObject (32) only means the base is empty of what we look for, not an error.
    return conn.result.get("result") in (0, 32)


def _plain(attributes: Any) -> dict[str, list[str]]:
    """ldap3 returns single values or lists depending on the schema: lower-case names, lists of str."""
    out: dict[str, list[str]] = {}
    for key, value in dict(attributes).items():
        values = value if isinstance(value, list) else [value]
        out[key.lower()] = [v.decode() if isinstance(v, bytes) else str(v) for v in values]
    return out


def _rdn_value(dn: str) -> str:
    """'cn=admins,ou=groups,dc=x' -> 'admins'."""
    try:
        return str(parse_dn(dn)[0][1])
    except LDAPException:
        return dn
