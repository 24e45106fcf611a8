"""Users, roles, passwords and API tokens.

Passwords are argon2id hashes; API tokens are random, shown once and stored as
a SHA-256 digest (a token has 256 bits of entropy, so a fast digest is enough
and a lookup needs no scan). A removed user keeps their row, so their name is
never reused and old audit rows still name one person; their tokens are
revoked with them.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from assistant.actor import ROLES, Actor, Via, require
from assistant.audit import AuditLog
from core.db import Migration
from core.errors import BadInput, Conflict, NotFound, Unauthorized

NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
FIRST_ADMIN = "admin"
MIN_PASSWORD = 10
_hasher = PasswordHasher()
# Verified against when the name is unknown, so a failed login takes as long either way.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class User:
    name: str
    role: str
    created_at: str

    def as_dict(self) -> dict:
        return {"name": self.name, "role": self.role, "created_at": self.created_at}


class UserService:
    def __init__(self, engine: Engine, audit: AuditLog) -> None:
        self.engine = engine
        self.audit = audit

    # --- who is calling -------------------------------------------------------------------------
    def authenticate(self, name: str, password: str, via: Via = "ui") -> Actor | None:
        """A login: the actor for a right name and password, else None. Both are audited; a
        failed login names the user only when one by that name exists."""
        row = self._row(name) if NAME.match(name or "") else None
        try:
            ok = _hasher.verify(row["password_hash"] if row else _DUMMY_HASH, password or "")
        except (VerificationError, InvalidHashError):
            ok = False
        if not (ok and row):
            self.audit.record(None, "login_failed", name if row else None, via=via, known_user=row is not None)
            return None
        actor = Actor(row["name"], row["role"], via)
        self.audit.record(actor, "login", actor.id)
        return actor

    def actor_for(self, name: str | None, via: Via) -> Actor:
        """The actor for a logged-in user, read afresh on every call: a role change or removal
        takes effect at once, even for a browser session opened before it."""
        row = self._row(name) if name else None
        if row is None:
            raise Unauthorized("log in first" if not name else f"user {name!r} no longer exists")
        return Actor(row["name"], row["role"], via)

    def actor_for_token(self, token: str | None) -> Actor:
        """The actor an API token stands for; Unauthorized for a missing, unknown or revoked one."""
        if not token:
            raise Unauthorized("send an API token: Authorization: Bearer <token> (helpdesk token create NAME)")
        parts = token.split("_")
        row = None
        if len(parts) == 3 and parts[0] == "hd":
            with self.engine.connect() as conn:
                row = conn.execute(text(
                    "SELECT t.token_hash, t.revoked_at, u.name, u.role, u.removed_at FROM api_tokens t "
                    "JOIN users u ON u.name = t.user_name WHERE t.id = :id"), {"id": parts[1]}).first()
        if row is None or not hmac.compare_digest(row.token_hash, _digest(parts[2])) or row.revoked_at \
                or row.removed_at:
            self.audit.record(None, "token_failed", parts[1] if row is not None else None, via="api")
            raise Unauthorized("this API token is not valid (revoked, or its user was removed)")
        return Actor(row.name, row.role, "api")

    # --- managing users (admins) ----------------------------------------------------------------
    def add(self, actor: Actor, name: str, role: str, password: str | None = None) -> tuple[User, str]:
        """A new user and their password (generated when not given; shown once, stored hashed)."""
        require(actor, "admin")
        self._check_name(name)
        self._check_role(role)
        password = self._check_password(password) if password is not None else secrets.token_urlsafe(12)
        user = User(name, role, _now())
        try:
            with self.engine.begin() as conn:
                conn.execute(text("INSERT INTO users (name, role, password_hash, created_at) "
                                  "VALUES (:n, :r, :h, :t)"),
                             {"n": name, "r": role, "h": _hasher.hash(password), "t": user.created_at})
        except IntegrityError:
            raise Conflict(f"a user named {name!r} exists or existed (names are never reused)") from None
        self.audit.record(actor, "user_added", name, role=role)
        return user, password

    def ensure_first_admin(self) -> str | None:
        """On first start (no users at all) create `admin` and return its one-time password,
        which the caller prints once; it is stored nowhere but as a hash."""
        with self.engine.connect() as conn:
            if conn.execute(text("SELECT COUNT(*) FROM users")).scalar():
                return None
        system = Actor("system:first-start", "admin", "cli")
        try:
            return self.add(system, FIRST_ADMIN, "admin")[1]
        except Conflict:  # another process created it first
            return None

    def list(self, actor: Actor, removed: bool = False) -> list[dict]:
        require(actor, "admin")
        sql = "SELECT name, role, created_at, removed_at FROM users"
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(text(sql + ("" if removed else
                                                                        " WHERE removed_at IS NULL")
                                                                    + " ORDER BY name"))]
            tokens = {r.user_name: r.n for r in conn.execute(text(
                "SELECT user_name, COUNT(*) AS n FROM api_tokens WHERE revoked_at IS NULL GROUP BY user_name"))}
        for row in rows:
            row["tokens"] = tokens.get(row["name"], 0)
        return rows

    def set_role(self, actor: Actor, name: str, role: str) -> User:
        require(actor, "admin")
        self._check_role(role)
        row = self._existing(name)
        if row["role"] == "admin" and role != "admin":
            self._keep_an_admin(name)
        with self.engine.begin() as conn:
            conn.execute(text("UPDATE users SET role = :r WHERE name = :n"), {"r": role, "n": name})
        self.audit.record(actor, "role_changed", name, before=row["role"], after=role)
        return User(name, role, row["created_at"])

    def reset_password(self, actor: Actor, name: str, password: str | None = None) -> str:
        require(actor, "admin")
        self._existing(name)
        password = self._check_password(password) if password is not None else secrets.token_urlsafe(12)
        with self.engine.begin() as conn:
            conn.execute(text("UPDATE users SET password_hash = :h WHERE name = :n"),
                         {"h": _hasher.hash(password), "n": name})
        self.audit.record(actor, "password_reset", name)
        return password

    def remove(self, actor: Actor, name: str) -> None:
        require(actor, "admin")
        row = self._existing(name)
        if row["role"] == "admin":
            self._keep_an_admin(name)
        now = _now()
        with self.engine.begin() as conn:
            conn.execute(text("UPDATE users SET removed_at = :t WHERE name = :n"), {"t": now, "n": name})
            revoked = conn.execute(text("UPDATE api_tokens SET revoked_at = :t WHERE user_name = :n "
                                        "AND revoked_at IS NULL"), {"t": now, "n": name}).rowcount
        self.audit.record(actor, "user_removed", name, tokens_revoked=revoked)

    # --- API tokens -----------------------------------------------------------------------------
    def create_token(self, actor: Actor, name: str, label: str | None = None) -> tuple[str, str]:
        """(token id, the token): the token is shown this once and stored as a digest."""
        require(actor, "admin")
        self._existing(name)
        token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32).replace("_", "-")
        with self.engine.begin() as conn:
            conn.execute(text("INSERT INTO api_tokens (id, user_name, label, token_hash, created_at) "
                              "VALUES (:id, :n, :l, :h, :t)"),
                         {"id": token_id, "n": name, "l": (label or "")[:100], "h": _digest(secret), "t": _now()})
        self.audit.record(actor, "token_created", name, token_id=token_id)
        return token_id, f"hd_{token_id}_{secret}"

    def tokens(self, actor: Actor, name: str | None = None) -> list[dict]:
        require(actor, "admin")
        sql = "SELECT id, user_name, label, created_at, revoked_at FROM api_tokens"
        params = {}
        if name:
            sql += " WHERE user_name = :n"
            params["n"] = name
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(sql + " ORDER BY created_at"), params)]

    def revoke_token(self, actor: Actor, token_id: str) -> None:
        require(actor, "admin")
        with self.engine.begin() as conn:
            row = conn.execute(text("SELECT user_name FROM api_tokens WHERE id = :id AND revoked_at IS NULL"),
                               {"id": token_id}).first()
            if row is None:
                raise NotFound(f"no live API token {token_id!r} (see: helpdesk token list)")
            conn.execute(text("UPDATE api_tokens SET revoked_at = :t WHERE id = :id"), {"t": _now(), "id": token_id})
        self.audit.record(actor, "token_revoked", row.user_name, token_id=token_id)

    # --- helpers --------------------------------------------------------------------------------
    def _row(self, name: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT * FROM users WHERE name = :n AND removed_at IS NULL"), {"n": name}).first()
        return dict(row._mapping) if row is not None else None

    def _existing(self, name: str) -> dict:
        row = self._row(name)
        if row is None:
            raise NotFound(f"no user named {name!r} (see: helpdesk users list)")
        return row

    def _keep_an_admin(self, name: str) -> None:
        with self.engine.connect() as conn:
            others = conn.execute(text("SELECT COUNT(*) FROM users WHERE role = 'admin' AND removed_at IS NULL "
                                       "AND name != :n"), {"n": name}).scalar()
        if not others:
            raise Conflict(f"{name} is the last admin; make another user an admin first")

    @staticmethod
    def _check_name(name: str) -> None:
        if not NAME.match(name or ""):
            raise BadInput("a user name is 1-64 letters, digits and . _ @ -")

    @staticmethod
    def _check_role(role: str) -> None:
        if role not in ROLES:
            raise BadInput(f"role must be one of {', '.join(ROLES)}")

    @staticmethod
    def _check_password(password: str) -> str:
        if len(password) < MIN_PASSWORD:
            raise BadInput(f"a password has at least {MIN_PASSWORD} characters")
        return password


def m001_users(conn: Connection) -> None:
    conn.execute(text("""
        CREATE TABLE users (
            name VARCHAR(64) PRIMARY KEY,
            role VARCHAR(20) NOT NULL,
            password_hash VARCHAR(200) NOT NULL,
            created_at VARCHAR(40) NOT NULL,
            removed_at VARCHAR(40)
        )"""))
    conn.execute(text("""
        CREATE TABLE api_tokens (
            id VARCHAR(32) PRIMARY KEY,
            user_name VARCHAR(64) NOT NULL REFERENCES users (name),
            label VARCHAR(100) NOT NULL,
            token_hash VARCHAR(64) NOT NULL,
            created_at VARCHAR(40) NOT NULL,
            revoked_at VARCHAR(40)
        )"""))


MIGRATIONS: list[Migration] = [("assistant.users.001", m001_users)]
