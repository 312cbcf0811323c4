"""Fixtures for authenticator tests against real identity systems (slapd, KDC, PAM)."""

from amalthea.testing.engines.auth_fixtures import (  # noqa: F401
    kerberos_realm,
    pam_test_service,
    silent_tcp_port,
    slapd_directory,
)
