"""``pam``: the machine's own users and passwords, through PAM (via ``pamela``).

Groups are the user's Unix groups (primary and supplementary, from the group database via
``getgrouplist``, so NSS sources such as sssd count too); ``admin_groups = {"sudo"}`` makes
members of ``sudo`` hub admins through the shared policy in the base class.

Design notes:
- PAM calls block (and a failed login with ``pam_faildelay`` sleeps seconds), so they run in
  a private thread pool with a deadline; the event loop never waits on PAM.
- The ``su`` services are refused at startup: called by root, ``pam_rootok`` makes them accept
  any password. Any other service whose file lets ``pam_rootok`` suffice is refused too.
- The name typed is given to PAM as is (after stripping blanks): Unix names are
  case-sensitive, and the hub's normalisation (lower-case, ``username_map``) applies after.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
from pathlib import Path
from typing import Any

from traitlets import Bool, Float, TraitError, Unicode, validate

from amalthea.auth._blocking import BlockingRunner
from amalthea.auth._refusals import logs_refusals
from amalthea.auth.base import Authenticator, AuthError, AuthResult, LoginRequest

try:
    import pamela
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError(
        f"the pam authenticator needs pamela: pip install 'amalthea[pam]' ({e})"
    ) from e

__all__ = ["PAMAuthenticator"]

#: Services that accept any password when the caller is root (the hub often is).
REFUSED_SERVICES = frozenset({"su", "su-l", "runuser", "runuser-l"})
PAM_DIR = Path("/etc/pam.d")
_ROOTOK = re.compile(r"^\s*auth\s+sufficient\s+pam_rootok\.so", re.MULTILINE)

# PAM result codes from <security/_pam_types.h> that mean "the person should be told".
_PAM_ACCT_EXPIRED = 13
_PAM_NEW_AUTHTOK_REQD = 12
_PAM_AUTHINFO_UNAVAIL = 9


class PAMAuthenticator(Authenticator):
    system_accounts = True  # PAM users are Unix accounts: the local spawner can run as them

    service = Unicode(
        "login",
        help="PAM service (a file in /etc/pam.d) used to check passwords. Never 'su': called "
        "by root it accepts any password.",
    ).tag(config=True)
    encoding = Unicode("utf-8", help="Encoding of usernames and passwords handed to PAM.").tag(
        config=True
    )
    check_account = Bool(
        True, help="Also run PAM account management (expired or locked accounts are refused)."
    ).tag(config=True)
    open_sessions = Bool(
        False,
        help="Open a PAM session at each login (pam_mkhomedir, pam_limits...). Off by default: "
        "many session modules need a terminal or systemd-logind and fail from a web service.",
    ).tag(config=True)
    timeout = Float(
        30.0, help="Seconds a login may wait for PAM (e.g. a remote sssd) before it is refused."
    ).tag(config=True)

    @validate("service")
    def _refuse_su(self, proposal: dict[str, Any]) -> str:
        service = str(proposal["value"])
        if service in REFUSED_SERVICES:
            raise TraitError(_su_message(service))
        return service

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._runner = BlockingRunner("pam", max_workers=4)

    async def startup(self) -> None:
        if self.service in REFUSED_SERVICES:  # config may have bypassed the trait validator
            raise ValueError(_su_message(self.service))
        check_service_file(self.service)

    @logs_refusals
    async def authenticate(self, request: LoginRequest) -> AuthResult | None:
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        if not username or not password:
            return None
        try:
            await self._runner.run(self.timeout, self._check_password, username, password)
        except TimeoutError:
            raise AuthError(
                "The login service is unreachable, try again later.",
                log_message=f"PAM service {self.service!r} did not answer within "
                f"{self.timeout:g} s for {username!r}",
                status=503,
            ) from None
        except pamela.PAMError as e:
            self._refused(username, e)
            return None
        # With admin_groups set, admin follows the Unix groups (leaving sudo revokes it);
        # without, admin is left to the hub (None).
        admin = False if self.admin_groups else None
        return AuthResult(name=username, groups=unix_groups(username), admin=admin)

    def _check_password(self, username: str, password: str) -> None:
        """Runs in a worker thread: authenticate, account checks, optional session."""
        pamela.authenticate(
            username, password, service=self.service, encoding=self.encoding,
            check=self.check_account,
        )  # fmt: skip
        if self.open_sessions:
            pamela.open_session(username, service=self.service, encoding=self.encoding)

    def _refused(self, username: str, error: pamela.PAMError) -> None:
        self.log.info("PAM refused %r (service %r): %s", username, self.service, error)
        if error.errno == _PAM_ACCT_EXPIRED:
            raise AuthError("Your account has expired. Ask the system administrator.")
        if error.errno == _PAM_NEW_AUTHTOK_REQD:
            raise AuthError(
                "Your password has expired. Change it (e.g. with passwd over ssh), then log in."
            )
        if error.errno == _PAM_AUTHINFO_UNAVAIL:
            raise AuthError(
                "The login service is unreachable, try again later.",
                log_message=f"PAM service {self.service!r}: {error}",
                status=503,
            )
        # anything else (wrong password, unknown user, denied): the hub's generic message


def unix_groups(username: str) -> list[str]:
    """Names of the user's primary and supplementary groups (empty if unknown to NSS)."""
    try:
        entry = pwd.getpwnam(username)
    except KeyError:
        return []
    names = []
    for gid in os.getgrouplist(username, entry.pw_gid):
        try:
            names.append(grp.getgrgid(gid).gr_name)
        except KeyError:  # a gid with no name: nothing to match admin_groups against
            continue
    return sorted(set(names))


def check_service_file(service: str) -> None:
    """Raise ValueError if the service file is missing or lets root in without a password."""
    path = PAM_DIR / service
    # Linux-PAM ignores /etc/pam.conf when /etc/pam.d exists, so only the file counts.
    if PAM_DIR.is_dir() and not path.exists():
        raise ValueError(
            f"PAMAuthenticator.service = {service!r}, but {path} does not exist, so PAM "
            "would fall back to the 'other' service (which usually refuses everyone). "
            "Create it or set PAMAuthenticator.service to an existing service such as 'login'."
        )
    if path.exists() and _ROOTOK.search(path.read_text(errors="replace")):
        raise ValueError(
            f"PAM service {service!r} lets root in without a password (pam_rootok "
            f"sufficient in {path}); the hub would accept any password. Use 'login' or a "
            "dedicated service file."
        )


def _su_message(service: str) -> str:
    return (
        f"PAMAuthenticator.service = {service!r} is refused: called by root, this service "
        "accepts any password (pam_rootok). Use 'login' (the default) or a dedicated service file."
    )
