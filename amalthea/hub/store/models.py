"""Database tables.

The schema follows JupyterHub 6's tables where they carry the same facts (names and meanings in
jupyterhub-protocol.md §13), so that concepts map one to one; it is our own schema, migrated by our
own Alembic chain. Timestamps are timezone-naive UTC. JSON columns use SQLAlchemy's JSON type.

Secrets are never stored in clear: API tokens, OAuth codes and share codes keep a short ``prefix``
(for lookup) and a hash; passwords of local accounts are argon2id hashes; auth_state is encrypted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from amalthea.hub.clock import utcnow

# Deterministic constraint names keep Alembic migrations portable between SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON, list[Any]: JSON}


user_group_map = Table(
    "user_group_map",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
)


def _role_map(entity: str) -> Table:
    return Table(
        f"{entity}_role_map",
        Base.metadata,
        Column(f"{entity}_id", ForeignKey(f"{entity}s.id", ondelete="CASCADE"), primary_key=True),
        Column("role_id", ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
        Column("managed_by_auth", Boolean, default=False, nullable=False),
    )


user_role_map = _role_map("user")
group_role_map = _role_map("group")
service_role_map = _role_map("service")


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, index=True)
    admin: Mapped[bool] = mapped_column(default=False)
    user_info: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_activity: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    #: rotating it logs the user out everywhere (session cookies embed it)
    cookie_id: Mapped[str] = mapped_column(String(255), unique=True)
    encrypted_auth_state: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)

    groups: Mapped[list[Group]] = relationship(
        secondary=user_group_map, back_populates="users", lazy="selectin"
    )
    roles: Mapped[list[Role]] = relationship(secondary=user_role_map, lazy="selectin")
    servers: Mapped[list[Server]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )


class Server(Base):
    """One row per (user, server name); the default server has name ''.

    ``state`` is the lifecycle state (stopped/pending/running/stopping/failed); ``spawner_state``
    is what the spawner needs to find the server again after a hub restart.
    """

    __tablename__ = "servers"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_servers_user_id_name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    display_name: Mapped[str] = mapped_column(String(255), default="")
    state: Mapped[str] = mapped_column(String(16), default="stopped")
    #: where it listens when running: "http://127.0.0.1:41234"
    url: Mapped[str | None] = mapped_column(String(2047), default=None)
    spawner_state: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    user_options: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    started: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    last_activity: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    #: why the last spawn failed, for the progress page and the API after a restart
    failure: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)

    user: Mapped[User] = relationship(back_populates="servers", lazy="joined")


class Group(Base):
    __tablename__ = "groups"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, index=True)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: True when the authenticator created/syncs it (manage_groups); admins' own groups are False
    managed_by_auth: Mapped[bool] = mapped_column(default=False)

    users: Mapped[list[User]] = relationship(
        secondary=user_group_map, back_populates="groups", lazy="selectin"
    )
    roles: Mapped[list[Role]] = relationship(secondary=group_role_map, lazy="selectin")


class Role(Base):
    __tablename__ = "roles"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(String(1023), default="")
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    managed_by_auth: Mapped[bool] = mapped_column(default=False)


class Service(Base):
    __tablename__ = "services"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    admin: Mapped[bool] = mapped_column(default=False)
    url: Mapped[str | None] = mapped_column(String(2047), default=None)
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    display: Mapped[bool] = mapped_column(default=True)
    oauth_no_confirm: Mapped[bool] = mapped_column(default=False)
    oauth_client_allowed_scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    command: Mapped[list[str]] = mapped_column(JSON, default=list)
    cwd: Mapped[str | None] = mapped_column(String(4095), default=None)
    environment: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    user: Mapped[str | None] = mapped_column(String(255), default=None)
    from_config: Mapped[bool] = mapped_column(default=True)
    pid: Mapped[int | None] = mapped_column(default=None)
    roles: Mapped[list[Role]] = relationship(secondary=service_role_map, lazy="selectin")


class OAuthClient(Base):
    __tablename__ = "oauth_clients"
    id: Mapped[int] = mapped_column(primary_key=True)
    identifier: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(String(1023), default="")
    #: hash of the client secret; "" = cannot authenticate
    secret: Mapped[str] = mapped_column(String(255), default="")
    redirect_uri: Mapped[str] = mapped_column(String(1023), default="")
    allowed_scopes: Mapped[list[str]] = mapped_column(JSON, default=list)


class APIToken(Base):
    """Every kind of token: API, server, service, OAuth access. Exactly one of user/service."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, default=None
    )
    service_id: Mapped[int | None] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True, default=None
    )
    hashed: Mapped[str] = mapped_column(String(255), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("oauth_clients.identifier", ondelete="CASCADE"), default="jupyterhub"
    )
    session_id: Mapped[str | None] = mapped_column(String(255), default=None, index=True)
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    last_activity: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    note: Mapped[str] = mapped_column(String(1023), default="")
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)

    user: Mapped[User | None] = relationship(lazy="joined")
    service: Mapped[Service | None] = relationship(lazy="joined")


class OAuthCode(Base):
    __tablename__ = "oauth_codes"
    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("oauth_clients.identifier", ondelete="CASCADE")
    )
    #: hash of the code (codes are single use and short lived)
    code: Mapped[str] = mapped_column(String(255), unique=True)
    expires_at: Mapped[int] = mapped_column(Integer)
    redirect_uri: Mapped[str] = mapped_column(String(1023))
    session_id: Mapped[str | None] = mapped_column(String(255), default=None)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    code_challenge: Mapped[str | None] = mapped_column(String(255), default=None)
    code_challenge_method: Mapped[str | None] = mapped_column(String(64), default=None)


class Share(Base):
    __tablename__ = "shares"
    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, default=None
    )
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), index=True, default=None
    )


class ShareCode(Base):
    __tablename__ = "share_codes"
    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"), index=True)
    hashed: Mapped[str] = mapped_column(String(255), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    exchange_count: Mapped[int] = mapped_column(default=0)
    last_exchanged_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)


class LocalAccount(Base):
    """Accounts of the ``local`` authenticator (and its MFA enrolment)."""

    __tablename__ = "local_accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(255), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    approved: Mapped[bool] = mapped_column(default=True)
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    failed_attempts: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    totp_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    recovery_codes: Mapped[list[str]] = mapped_column(JSON, default=list)


class PasswordLink(Base):
    """One-time "set your password" links an admin hands out (local accounts). Only the hash
    of the code is stored; the row is deleted when the link is used."""

    __tablename__ = "password_links"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    hashed: Mapped[str] = mapped_column(String(255), unique=True)
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class LoginSession(Base):
    """Browser sessions; the signed cookie carries the session id. Logout deletes the row
    and the OAuth tokens issued within it."""

    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    user_agent: Mapped[str] = mapped_column(Text, default="")
