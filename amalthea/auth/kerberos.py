"""``kerberos``: SPNEGO single sign-on (``Authorization: Negotiate``) and password login via the KDC.

Two ways in, both ending with a principal such as ``alice@EXAMPLE.ORG``:

- header (SPNEGO): the browser sends a GSSAPI token for our service principal; we accept it
  with the service keytab. With no token we answer 401 ``WWW-Authenticate: Negotiate`` so the
  browser knows to send one. Browsers that cannot (no ticket) see the 401 page, and the login
  form (``allow_password``) stays usable.
- form (password): ``gss_acquire_cred_with_password`` asks the KDC for a TGT, then we use that
  TGT to get a ticket for our own service and accept it with the keytab. The second step is
  what makes it safe: a forged KDC (an attacker answering on the network) can hand out a TGT
  for any password, but cannot make a ticket our keytab decrypts.

Groups are not managed (``AuthResult.groups`` is None): Kerberos has no group database;
combine with admin_users/allowed_users, or put LDAP in front for groups.
"""

from __future__ import annotations

import base64
import binascii
import socket
from typing import Any

from traitlets import Bool, Float, Set, Unicode

from amalthea.auth._blocking import BlockingRunner
from amalthea.auth._refusals import logs_refusals
from amalthea.auth.base import Authenticator, AuthError, AuthResult, LoginRequest

try:
    import gssapi
    import gssapi.raw
    from gssapi.raw.misc import GSSError
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError(
        f"the kerberos authenticator needs gssapi: pip install 'amalthea[kerberos]' ({e})"
    ) from e

__all__ = ["KerberosAuthenticator"]

UNREACHABLE = "The login service is unreachable, try again later."
CHALLENGE = {"WWW-Authenticate": "Negotiate"}

# MIT krb5 error codes as GSSAPI minor codes (krb5 error table base 0x96c73a00 + offset).
_KRB5_BASE = 0x96C73A00
_WRONG_CREDENTIALS = {
    _KRB5_BASE + 6,  # KDC_ERR_C_PRINCIPAL_UNKNOWN: no such user
    _KRB5_BASE + 24,  # KDC_ERR_PREAUTH_FAILED: wrong password (with pre-authentication)
    _KRB5_BASE + 31,  # KRB_AP_ERR_BAD_INTEGRITY: wrong password (reply did not decrypt)
}
_KDC_UNREACHABLE = {_KRB5_BASE + 155, _KRB5_BASE + 156}  # REALM_UNKNOWN, KDC_UNREACH
_EXPIRED = {_KRB5_BASE + 23}  # KDC_ERR_KEY_EXP: password expired
_LOCKED = {_KRB5_BASE + 18}  # KDC_ERR_CLIENT_REVOKED: disabled or locked out


class _Incomplete(Exception):
    """The client's token did not complete a context in one step (we support only that)."""


class _Unverified(Exception):
    """The KDC accepted a password but its service ticket failed the keytab check."""


class KerberosAuthenticator(Authenticator):
    login_kind = "header"

    keytab = Unicode(
        "/etc/krb5.keytab",
        help="Keytab holding the key of service_principal (readable by the hub only).",
    ).tag(config=True)
    service_principal = Unicode(
        "",
        help="The hub's principal, 'HTTP/hub.example.org@EXAMPLE.ORG' (or 'HTTP@hub.example.org'). "
        "Empty: HTTP@<this host's fully qualified name>.",
    ).tag(config=True)
    realm = Unicode(
        "", help="Realm appended to names typed in the login form; empty: the default realm."
    ).tag(config=True)
    allowed_realms = Set(
        Unicode(),
        help="Realms whose principals may log in; empty: only the realm of service_principal "
        "(or the default realm).",
    ).tag(config=True)
    strip_realm = Bool(
        True, help="Use 'alice' rather than 'alice@EXAMPLE.ORG' as the hub username."
    ).tag(config=True)
    allow_password = Bool(
        True, help="Also accept a username/password form checked against the KDC."
    ).tag(config=True)
    timeout = Float(15.0, help="Seconds a login may wait for the KDC.").tag(config=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._runner = BlockingRunner("kerberos", max_workers=4)

    def _service_name(self) -> gssapi.Name:
        principal = self.service_principal or f"HTTP@{socket.getfqdn()}"
        if "@" in principal and "/" not in principal:
            return gssapi.Name(principal, gssapi.NameType.hostbased_service)
        return gssapi.Name(principal, gssapi.NameType.kerberos_principal)

    def _acceptor(self) -> gssapi.Credentials:
        return gssapi.Credentials(
            name=self._service_name(), usage="accept", store={"keytab": self.keytab}
        )

    async def startup(self) -> None:
        try:
            creds = self._acceptor()
            self.log.info("Kerberos: accepting tickets for %s from %s", creds.name, self.keytab)
        except GSSError as e:
            raise ValueError(
                f"KerberosAuthenticator cannot use the key of {self.service_principal or 'HTTP@' + socket.getfqdn()!r} "
                f"in keytab {self.keytab!r}: {e}. Check KerberosAuthenticator.keytab and "
                "service_principal (klist -k KEYTAB lists what the keytab holds)."
            ) from e

    def _realms(self) -> set[str]:
        if self.allowed_realms:
            return set(self.allowed_realms)
        principal = self.service_principal
        if "@" in principal and "/" in principal:
            return {principal.rsplit("@", 1)[1]}
        return {self.realm} if self.realm else {_default_realm()}

    def _result(self, principal: str, via: str) -> AuthResult:
        user, _, realm = principal.rpartition("@")
        if realm not in self._realms():
            raise AuthError(
                "Your Kerberos realm may not use this hub.",
                log_message=f"Kerberos {via}: {principal} refused, realm {realm!r} not in "
                f"{sorted(self._realms())}",
            )
        name = user if self.strip_realm else principal
        return AuthResult(name=name, user_info={"principal": principal})

    @logs_refusals
    async def authenticate(self, request: LoginRequest) -> AuthResult | None:
        if request.form.get("username") and self.allow_password:
            return await self._password_login(
                request.form["username"], request.form.get("password", "")
            )
        return await self._negotiate(_authorization(request))

    # ---- SPNEGO -----------------------------------------------------------------------------
    async def _negotiate(self, authorization: str) -> AuthResult:
        scheme, _, blob = authorization.partition(" ")
        if scheme.lower() != "negotiate" or not blob.strip():
            raise AuthError(
                "Kerberos sign-on needed.", log_message="", status=401, headers=CHALLENGE
            )
        try:
            token = base64.b64decode(blob.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise AuthError(
                "Your browser sent a malformed Kerberos token.",
                log_message="SPNEGO: Authorization header is not valid base64",
                status=400,
            ) from None
        try:
            principal = await self._runner.run(self.timeout, self._accept, token)
        except TimeoutError:
            raise AuthError(
                UNREACHABLE, log_message="SPNEGO: accepting a token timed out", status=503
            ) from None
        except (GSSError, _Incomplete) as e:
            raise AuthError(
                "Kerberos sign-on failed. Log in with your password instead.",
                log_message=f"SPNEGO token refused: {e}",
                status=401,
                headers=CHALLENGE,
            ) from e
        return self._result(principal, "SPNEGO")

    def _accept(self, token: bytes) -> str:
        ctx = gssapi.SecurityContext(creds=self._acceptor(), usage="accept")
        ctx.step(token)
        if not ctx.complete:  # e.g. NTLM inside SPNEGO, which needs more round trips
            raise _Incomplete("the SPNEGO exchange needs more than one round trip (not Kerberos?)")
        return str(ctx.initiator_name)

    # ---- password ---------------------------------------------------------------------------
    async def _password_login(self, username: str, password: str) -> AuthResult | None:
        username = username.strip()
        if not password or not username or "@" in username or "/" in username:
            return None  # a typed name is a plain user in our realm; no instances, no realms
        principal = f"{username}@{self.realm}" if self.realm else username
        try:
            full = await self._runner.run(self.timeout, self._kinit_and_verify, principal, password)
        except TimeoutError:
            raise AuthError(
                UNREACHABLE,
                log_message=f"Kerberos: the KDC did not answer within {self.timeout:g} s for {principal}",
                status=503,
            ) from None
        except GSSError as e:
            self._password_refused(principal, e)
            return None
        except _Unverified as e:
            raise AuthError(
                "The login service could not check your password. Tell the hub's administrator.",
                log_message=str(e),
                status=503,
            ) from e
        return self._result(full, "password")

    def _kinit_and_verify(self, principal: str, password: str) -> str:
        name = gssapi.Name(principal, gssapi.NameType.kerberos_principal)
        raw = gssapi.raw.acquire_cred_with_password(name, password.encode(), usage="initiate")
        tgt = gssapi.Credentials(raw.creds)
        # Prove the KDC is ours: get a ticket for our service and decrypt it with the keytab.
        try:
            initiator = gssapi.SecurityContext(
                name=self._service_name(), creds=tgt, usage="initiate"
            )
            acceptor = gssapi.SecurityContext(creds=self._acceptor(), usage="accept")
            acceptor.step(initiator.step())
            # gssapi defers an acceptor error that comes with an error token (it returns the
            # token instead of raising), so "no exception" does not mean "accepted".
            problem = None if acceptor.complete else getattr(acceptor, "_last_err", None)
            if not acceptor.complete:
                raise _Unverified(self._unverified(principal, str(problem or "not established")))
        except GSSError as e:
            raise _Unverified(self._unverified(principal, e.gen_message())) from e
        return str(acceptor.initiator_name)

    def _unverified(self, principal: str, detail: str) -> str:
        return (
            f"Kerberos: the KDC accepted the password of {principal}, but its ticket for "
            f"{self._service_name()} does not decrypt with keytab {self.keytab}: {detail}. "
            "Either the keytab is stale (re-export it) or the KDC that answered is not the real one."
        )

    def _password_refused(self, principal: str, error: GSSError) -> None:
        code = error.min_code
        if code in _WRONG_CREDENTIALS:
            self.log.info("Kerberos: password refused for %s: %s", principal, error.gen_message())
            return
        if code in _EXPIRED:
            raise AuthError("Your Kerberos password has expired. Change it (kpasswd), then log in.")
        if code in _LOCKED:
            raise AuthError("Your Kerberos account is disabled or locked. Ask the administrator.")
        log = f"Kerberos password login of {principal} failed: {error.gen_message()}"
        if code in _KDC_UNREACHABLE:
            raise AuthError(UNREACHABLE, log_message=log, status=503)
        raise AuthError(
            "The login service could not check your password. Tell the hub's administrator.",
            log_message=log,
            status=503,
        )


def _authorization(request: LoginRequest) -> str:
    for key, value in request.headers.items():
        if key.lower() == "authorization":
            return value
    return ""


def _default_realm() -> str:
    """The default realm from krb5.conf (the realm a bare name resolves to)."""
    name = gssapi.Name("probe", gssapi.NameType.kerberos_principal)
    return str(name.canonicalize(gssapi.MechType.kerberos)).rpartition("@")[2]
