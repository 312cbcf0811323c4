"""Authenticators: who may log in, with which groups and admin status.

The contract is :class:`amalthea.auth.base.Authenticator`; built-ins are registered in the
``amalthea.authenticators`` entry-point group (see pyproject.toml).
"""

from amalthea.auth.base import Authenticator, AuthError, AuthResult, LoginRequest

__all__ = ["AuthError", "AuthResult", "Authenticator", "LoginRequest"]
