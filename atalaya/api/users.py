"""Local users, roles, sessions and API tokens.

Passwords are hashed with scrypt (stdlib). Credentials are random 32-byte
values shown once and stored only as SHA-256:

* a *session* is made by logging in: a ``cookie`` session for the web page
  (HttpOnly, SameSite=Strict cookie, with a CSRF token that state-changing
  requests echo) or a ``bearer`` session for an API client. Sessions end after
  :data:`SESSION_HOURS` hours, or :data:`SESSION_IDLE_MINUTES` minutes without
  a request, or at logout; changing a password ends the user's other sessions,
  disabling a user ends all of them.
* an *API token* (``atalaya users token``, ``POST /api/auth/tokens``) is for
  scripts: it expires after at most :data:`TOKEN_MAX_DAYS` days and can be
  revoked.

Roles: ``analyst`` (read and annotate own party's data), ``liaison`` (a
partner's user: sees only what was released to its party), ``admin``
(everything an analyst can, plus users).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import select, update

from atalaya.core.errors import ValidationError
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks

ROLES = ("analyst", "liaison", "admin")
SESSION_HOURS = 12
"""Absolute lifetime of a login session."""
SESSION_IDLE_MINUTES = 30
"""A session unused for this long ends."""
TOKEN_DAYS = 90
"""Default lifetime of an API token."""
TOKEN_MAX_DAYS = 365
"""Longest lifetime an API token may be given."""
MIN_PASSWORD = 12
"""Shortest password accepted."""
MAX_PASSWORD = 1024
"""Longest password accepted (scrypt's cost grows with it)."""
_N, _R, _P = 2**14, 8, 1
_TOUCH_SECONDS = 60  # last_seen_at is written at most this often per session


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
    auth: str = "none"
    """How this request authenticated: ``cookie``, ``bearer`` (a login session) or ``token`` (an API token)."""
    session_id: int | None = None
    """The session row (cookie or bearer login), if any."""
    csrf_token: str | None = None
    """The session's CSRF token (cookie sessions)."""
    expires_at: datetime | None = None
    """When the credential used stops working."""


@dataclass(frozen=True, kw_only=True)
class NewSession:
    """A session just made: the secret is shown only here."""

    token: str
    """The session secret (cookie value or bearer token)."""
    csrf_token: str | None
    """CSRF token (cookie sessions)."""
    expires_at: datetime
    """Absolute end."""


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64)."""
    salt = secrets.token_bytes(16)
    dk = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(dk).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches the stored scrypt hash (False for a malformed hash)."""
    try:
        _, n, r, p, salt_b64, hash_b64 = stored.split("$")
        dk = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt_b64), n=int(n), r=int(r), p=int(p), dklen=32)
        return hmac.compare_digest(dk, base64.b64decode(hash_b64))
    except (ValueError, TypeError, MemoryError):
        return False


@cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def check_password_rules(password: str) -> None:
    """Raise ValidationError for a password that is too short or too long."""
    if len(password) < MIN_PASSWORD:
        raise ValidationError("password too short", hint=f"use at least {MIN_PASSWORD} characters (a passphrase)")
    if len(password) > MAX_PASSWORD:
        raise ValidationError("password too long", hint=f"use at most {MAX_PASSWORD} characters")


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _audit(conn: Any, actor: str, action: str, username: str, **details: Any) -> None:
    conn.execute(
        ks.audit.insert().values(
            time=_now(), actor=actor, action=action, object_type="user", object_id=username, details=details or None
        )
    )


def add_user(store: KnowledgeStore, username: str, password: str, *, party: str, role: str) -> User:
    """Create a user (raises ValidationError for a bad role, short password or existing name)."""
    if role not in ROLES:
        raise ValidationError(f"unknown role {role!r}", hint=f"use one of {', '.join(ROLES)}")
    if not username or len(username) > 80 or not username.isprintable():
        raise ValidationError(f"bad user name {username!r}", hint="use 1 to 80 printable characters")
    check_password_rules(password)
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
                created_at=_now(),
            )
        )
        uid = int(res.inserted_primary_key[0]) if res.inserted_primary_key else 0
    return User(id=uid, username=username, party=party.upper(), role=role)


def get_user(store: KnowledgeStore, username: str) -> User:
    """The user named ``username`` (ValidationError if there is none)."""
    with store.engine.connect() as conn:
        r = conn.execute(select(ks.users).where(ks.users.c.username == username)).first()
    if r is None:
        raise ValidationError(f"no user {username!r}", hint="list users with `atalaya users list`")
    return User(id=r.id, username=r.username, party=r.party_id, role=r.role)


def list_users(store: KnowledgeStore) -> list[dict[str, Any]]:
    """Every user with role, party, whether enabled, and counts of live sessions and API tokens."""
    now = _now()
    out: list[dict[str, Any]] = []
    with store.engine.connect() as conn:
        users = list(conn.execute(select(ks.users).order_by(ks.users.c.username)))
        sessions = list(conn.execute(select(ks.sessions).where(ks.sessions.c.revoked_at.is_(None))))
        tokens = list(conn.execute(select(ks.api_tokens).where(ks.api_tokens.c.revoked_at.is_(None))))
    for u in users:
        live_s = [s for s in sessions if s.user_id == u.id and _session_live(s, now)]
        live_t = [t for t in tokens if t.user_id == u.id and (_aware(t.expires_at) or now) >= now]
        out.append(
            {
                "username": u.username,
                "party": u.party_id,
                "role": u.role,
                "active": bool(u.active),
                "sessions": len(live_s),
                "tokens": len(live_t),
            }
        )
    return out


def set_password(
    store: KnowledgeStore, username: str, password: str, *, actor: str = "cli", keep_session: int | None = None
) -> None:
    """Set a user's password and end its sessions (all but ``keep_session``); API tokens stay."""
    check_password_rules(password)
    user = get_user(store, username)
    with store.begin() as conn:
        conn.execute(update(ks.users).where(ks.users.c.id == user.id).values(password_hash=hash_password(password)))
        q = update(ks.sessions).where(ks.sessions.c.user_id == user.id, ks.sessions.c.revoked_at.is_(None))
        if keep_session is not None:
            q = q.where(ks.sessions.c.id != keep_session)
        conn.execute(q.values(revoked_at=_now()))
        _audit(conn, actor, "user.password", username)


def set_active(store: KnowledgeStore, username: str, active: bool, *, actor: str = "cli") -> None:
    """Enable or disable a user; disabling ends its sessions (its API tokens stop working while disabled)."""
    user = get_user(store, username)
    with store.begin() as conn:
        conn.execute(update(ks.users).where(ks.users.c.id == user.id).values(active=active))
        if not active:
            conn.execute(
                update(ks.sessions)
                .where(ks.sessions.c.user_id == user.id, ks.sessions.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
        _audit(conn, actor, "user.enable" if active else "user.disable", username)


def authenticate(store: KnowledgeStore, username: str, password: str) -> User | None:
    """The user if the password is right and the user enabled, else None.

    Takes the same time whether or not the user exists or is enabled: a dummy hash is checked for unknown users.
    """
    with store.engine.connect() as conn:
        row = conn.execute(select(ks.users).where(ks.users.c.username == username)).first()
    stored = row.password_hash if row is not None else _dummy_hash()
    ok = verify_password(password, stored)
    if row is None or not row.active or not ok:
        return None
    return User(id=row.id, username=row.username, party=row.party_id, role=row.role)


# --------------------------------------------------------------------------- sessions


def _session_live(s: Any, now: datetime) -> bool:
    exp = _aware(s.expires_at)
    seen = _aware(s.last_seen_at)
    return (
        s.revoked_at is None
        and exp is not None
        and exp > now
        and seen is not None
        and seen + timedelta(minutes=SESSION_IDLE_MINUTES) > now
    )


def create_session(store: KnowledgeStore, user: User, *, kind: str, client: str | None = None) -> NewSession:
    """A new login session (``kind`` ``cookie`` or ``bearer``)."""
    if kind not in ("cookie", "bearer"):
        raise ValueError(f"unknown session kind {kind!r}")
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24) if kind == "cookie" else None
    now = _now()
    exp = now + timedelta(hours=SESSION_HOURS)
    with store.begin() as conn:
        conn.execute(
            ks.sessions.insert().values(
                user_id=user.id,
                kind=kind,
                token_sha256=_digest(token),
                csrf_token=csrf,
                created_at=now,
                expires_at=exp,
                last_seen_at=now,
                client=(client or "")[:80] or None,
            )
        )
    return NewSession(token=token, csrf_token=csrf, expires_at=exp)


def session_user(store: KnowledgeStore, token: str, *, kind: str) -> User | None:
    """The enabled user of a live session of ``kind`` (refreshing its idle clock), else None."""
    now = _now()
    q = (
        select(
            ks.users,
            ks.sessions.c.id.label("sid"),
            ks.sessions.c.kind.label("skind"),
            ks.sessions.c.csrf_token,
            ks.sessions.c.expires_at.label("sexp"),
            ks.sessions.c.last_seen_at,
            ks.sessions.c.revoked_at,
        )
        .join(ks.sessions, ks.sessions.c.user_id == ks.users.c.id)
        .where(ks.sessions.c.token_sha256 == _digest(token), ks.users.c.active.is_(True))
    )
    with store.engine.connect() as conn:
        row = conn.execute(q).first()
    if row is None or row.skind != kind:
        return None
    exp, seen = _aware(row.sexp), _aware(row.last_seen_at)
    if row.revoked_at is not None or exp is None or exp <= now or seen is None:
        return None
    if seen + timedelta(minutes=SESSION_IDLE_MINUTES) <= now:
        return None
    if (now - seen).total_seconds() >= _TOUCH_SECONDS:
        with store.begin() as conn:
            conn.execute(update(ks.sessions).where(ks.sessions.c.id == row.sid).values(last_seen_at=now))
    return User(
        id=row.id,
        username=row.username,
        party=row.party_id,
        role=row.role,
        auth=kind,
        session_id=row.sid,
        csrf_token=row.csrf_token,
        expires_at=exp,
    )


def end_session(store: KnowledgeStore, session_id: int) -> None:
    """Revoke one session (logout)."""
    with store.begin() as conn:
        conn.execute(update(ks.sessions).where(ks.sessions.c.id == session_id).values(revoked_at=_now()))


# --------------------------------------------------------------------------- API tokens


def issue_token(store: KnowledgeStore, user: User, *, name: str = "api", days: float = TOKEN_DAYS) -> str:
    """A new API token for ``user``, valid for ``days`` days (at most :data:`TOKEN_MAX_DAYS`)."""
    if not 0 < days <= TOKEN_MAX_DAYS:
        raise ValidationError(f"token lifetime {days} days is out of range", hint=f"use 1 to {TOKEN_MAX_DAYS} days")
    if not name or len(name) > 80 or not name.isprintable():
        raise ValidationError(f"bad token name {name!r}", hint="use 1 to 80 printable characters")
    token = secrets.token_urlsafe(32)
    now = _now()
    with store.begin() as conn:
        conn.execute(
            ks.api_tokens.insert().values(
                user_id=user.id,
                name=name,
                token_sha256=_digest(token),
                created_at=now,
                expires_at=now + timedelta(days=days),
            )
        )
    return token


def user_for_token(store: KnowledgeStore, token: str) -> User | None:
    """The enabled user of a live (unexpired, unrevoked) API token, else None."""
    now = _now()
    q = (
        select(
            ks.users,
            ks.api_tokens.c.id.label("tid"),
            ks.api_tokens.c.expires_at,
            ks.api_tokens.c.revoked_at,
            ks.api_tokens.c.last_used_at,
        )
        .join(ks.api_tokens, ks.api_tokens.c.user_id == ks.users.c.id)
        .where(ks.api_tokens.c.token_sha256 == _digest(token), ks.users.c.active.is_(True))
    )
    with store.engine.connect() as conn:
        row = conn.execute(q).first()
    if row is None or row.revoked_at is not None:
        return None
    exp = _aware(row.expires_at)
    if exp is None or exp <= now:  # tokens made before expiry was enforced have none: they no longer work
        return None
    used = _aware(row.last_used_at)
    if used is None or (now - used).total_seconds() >= _TOUCH_SECONDS:
        with store.begin() as conn:
            conn.execute(update(ks.api_tokens).where(ks.api_tokens.c.id == row.tid).values(last_used_at=now))
    return User(id=row.id, username=row.username, party=row.party_id, role=row.role, auth="token", expires_at=exp)


def list_tokens(store: KnowledgeStore, username: str) -> list[dict[str, Any]]:
    """A user's API tokens (never the secrets): id, name, created, expires, last used, revoked."""
    user = get_user(store, username)
    with store.engine.connect() as conn:
        rows = list(
            conn.execute(select(ks.api_tokens).where(ks.api_tokens.c.user_id == user.id).order_by(ks.api_tokens.c.id))
        )

    def iso(t: datetime | None) -> str | None:
        a = _aware(t)
        return a.isoformat() if a else None

    return [
        {
            "id": r.id,
            "name": r.name,
            "created_at": iso(r.created_at),
            "expires_at": iso(r.expires_at),
            "last_used_at": iso(r.last_used_at),
            "revoked_at": iso(r.revoked_at),
        }
        for r in rows
    ]


def revoke_tokens(
    store: KnowledgeStore, username: str, *, token_id: int | None = None, sessions: bool = False, actor: str = "cli"
) -> int:
    """Revoke one API token of ``username`` (``token_id``) or all of them; ``sessions``: end its sessions too.

    Returns how many tokens and sessions were revoked; ValidationError for a token id the user does not have.
    """
    user = get_user(store, username)
    now = _now()
    with store.begin() as conn:
        q = update(ks.api_tokens).where(ks.api_tokens.c.user_id == user.id, ks.api_tokens.c.revoked_at.is_(None))
        if token_id is not None:
            q = q.where(ks.api_tokens.c.id == token_id)
        n = int(conn.execute(q.values(revoked_at=now)).rowcount or 0)
        if token_id is not None and n == 0:
            raise ValidationError(
                f"user {username!r} has no live API token {token_id}", hint="list them with `atalaya users tokens NAME`"
            )
        if sessions:
            n += int(
                conn.execute(
                    update(ks.sessions)
                    .where(ks.sessions.c.user_id == user.id, ks.sessions.c.revoked_at.is_(None))
                    .values(revoked_at=now)
                ).rowcount
                or 0
            )
        _audit(conn, actor, "user.revoke", username, token_id=token_id, sessions=sessions, revoked=n)
    return n
