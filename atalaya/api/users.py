"""Local users, roles and API tokens.

Passwords are hashed with scrypt (stdlib); tokens are random 32-byte values
shown once and stored only as SHA-256. Roles: ``analyst`` (read and annotate
own party's data), ``liaison`` (a partner's user: sees only what was released
to its party), ``admin`` (everything an analyst can, plus users).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from atalaya.core.errors import ValidationError
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks

ROLES = ("analyst", "liaison", "admin")
SESSION_HOURS = 12
_N, _R, _P = 2**14, 8, 1


@dataclass(frozen=True, kw_only=True)
class User:
    """An authenticated principal."""

    id: int
    """Row id."""
    username: str
    """Login name."""
    party: str
    """Party the user belongs to (scopes what it may see)."""
    role: str
    """analyst, liaison or admin."""


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64)."""
    salt = secrets.token_bytes(16)
    dk = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(dk).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt_b64, hash_b64 = stored.split("$")
        dk = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt_b64), n=int(n), r=int(r), p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(dk, base64.b64decode(hash_b64))


def add_user(store: KnowledgeStore, username: str, password: str, *, party: str, role: str) -> User:
    """Create a user (raises ValidationError for a bad role, short password or existing name)."""
    if role not in ROLES:
        raise ValidationError(f"unknown role {role!r}", hint=f"use one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise ValidationError("password too short", hint="use at least 8 characters")
    with store.begin() as conn:
        if conn.execute(select(ks.users.c.id).where(ks.users.c.username == username)).first():
            raise ValidationError(f"user {username!r} exists", hint="choose another name")
        res = conn.execute(
            ks.users.insert().values(
                username=username,
                party_id=party.upper(),
                role=role,
                password_hash=hash_password(password),
                active=True,
                created_at=datetime.now(UTC),
            )
        )
        uid = int(res.inserted_primary_key[0]) if res.inserted_primary_key else 0
    return User(id=uid, username=username, party=party.upper(), role=role)


def set_password(store: KnowledgeStore, username: str, password: str) -> None:
    with store.begin() as conn:
        conn.execute(
            update(ks.users).where(ks.users.c.username == username).values(password_hash=hash_password(password))
        )


def authenticate(store: KnowledgeStore, username: str, password: str) -> User | None:
    with store.engine.connect() as conn:
        row = conn.execute(select(ks.users).where(ks.users.c.username == username, ks.users.c.active.is_(True))).first()
    if row is None or not verify_password(password, row.password_hash):
        return None
    return User(id=row.id, username=row.username, party=row.party_id, role=row.role)


def issue_token(
    store: KnowledgeStore, user: User, *, name: str = "session", hours: float | None = SESSION_HOURS
) -> str:
    """A new bearer token for ``user`` (``hours=None``: no expiry, for machine tokens)."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with store.begin() as conn:
        conn.execute(
            ks.api_tokens.insert().values(
                user_id=user.id,
                name=name,
                token_sha256=hashlib.sha256(token.encode()).hexdigest(),
                created_at=now,
                expires_at=None if hours is None else now + timedelta(hours=hours),
            )
        )
    return token


def user_for_token(store: KnowledgeStore, token: str) -> User | None:
    digest = hashlib.sha256(token.encode()).hexdigest()
    q = (
        select(ks.users, ks.api_tokens.c.expires_at)
        .join(ks.api_tokens, ks.api_tokens.c.user_id == ks.users.c.id)
        .where(ks.api_tokens.c.token_sha256 == digest, ks.users.c.active.is_(True))
    )
    with store.engine.connect() as conn:
        row = conn.execute(q).first()
    if row is None:
        return None
    exp = row.expires_at
    if exp is not None:
        if exp.tzinfo is None:
            exp = exp.replace(tzinfo=UTC)
        if exp < datetime.now(UTC):
            return None
    return User(id=row.id, username=row.username, party=row.party_id, role=row.role)


def revoke_token(store: KnowledgeStore, token: str) -> None:
    digest = hashlib.sha256(token.encode()).hexdigest()
    with store.begin() as conn:
        conn.execute(ks.api_tokens.delete().where(ks.api_tokens.c.token_sha256 == digest))
