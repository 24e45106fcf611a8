"""The pseudonym vault: per conversation, the same value always gets the same placeholder.

"Jane Doe" becomes <PERSON_1> in every turn of a conversation, so the model
can follow who is who without ever seeing a name. The mapping is the only
place raw values live. It is encrypted with Fernet (AES-128-CBC + HMAC) under
a key that never enters the database: `HELPDESK_VAULT_KEY`, or a key file
(created with mode 0600 on first start). It expires after `ttl_hours`.
Placeholders are turned back into values only for the reply shown to the agent.

Beside each entry the vault keeps keyed hashes (HMAC-SHA256 under a key
derived from the vault key) of the values it holds, so an erasure request
("delete everything about jane.doe@example.com") finds the conversations
without the value ever being stored. The hashes outlive the encrypted
mapping's expiry, for as long as the conversation's exchanges are kept.

Fail closed: a database with vault entries and no key, or a key that does
not match the database, stops start-up. A vault that cannot be read during a
turn blocks the turn.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import Connection, Engine, text

from core.db import Migration

from core.errors import ConfigError

KEY_ENV = "HELPDESK_VAULT_KEY"
_CHECK_PLAINTEXT = b"helpdesk-vault-key-check"
PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*?)_(\d+)>")


def load_key(key_file: Path, engine: Engine) -> bytes:
    """The vault key: from the environment, else the key file; created only for a new vault."""
    from cryptography.fernet import Fernet

    raw = os.environ.get(KEY_ENV)
    if raw:
        key = raw.strip().encode()
    elif key_file.exists():
        key = key_file.read_bytes().strip()
    else:
        with engine.connect() as conn:
            in_use = conn.execute(text("SELECT COUNT(*) FROM vault_meta")).scalar()
        if in_use:
            raise ConfigError(
                f"the vault key is missing: set {KEY_ENV} or restore {key_file} "
                "(the database holds a vault encrypted with it)"
            )
        key = Fernet.generate_key()
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key + b"\n")
    try:
        Fernet(key)
    except ValueError:
        raise ConfigError(f"the vault key is not a valid Fernet key (from {KEY_ENV} or {key_file})") from None
    return key


class Vault:
    def __init__(self, engine: Engine, key: bytes, ttl_hours: float = 24.0) -> None:
        from cryptography.fernet import Fernet, InvalidToken

        self.engine = engine
        self._fernet = Fernet(key)
        self._invalid = InvalidToken
        self.ttl = timedelta(hours=ttl_hours)
        self._lock = threading.Lock()
        self._lookup_key = hmac.new(key, b"helpdesk vault lookup", hashlib.sha256).digest()
        self._check_key()
        self._backfill_lookup()

    def _check_key(self) -> None:
        """A known token, encrypted with the key the vault was made with: a wrong key stops start-up."""
        with self.engine.begin() as conn:
            token = conn.execute(text("SELECT key_check FROM vault_meta")).scalar()
            if token is None:
                conn.execute(text("INSERT INTO vault_meta (key_check) VALUES (:t)"),
                             {"t": self._fernet.encrypt(_CHECK_PLAINTEXT).decode()})
                return
        try:
            ok = self._fernet.decrypt(token.encode()) == _CHECK_PLAINTEXT
        except self._invalid:
            ok = False
        if not ok:
            raise ConfigError("the vault key does not match this database's vault (wrong HELPDESK_VAULT_KEY or key file)")

    # -- finding a customer's conversations -------------------------------------------------------
    def lookup_hashes(self, value: str) -> set[str]:
        """The keyed hashes a value is found by: its normalised form, and for anything with seven
        or more digits (a phone number in any format) its last ten digits."""
        norm = " ".join(value.lower().split())
        forms = {norm}
        digits = "".join(ch for ch in value if ch.isdigit())
        if len(digits) >= 7:
            forms.add("digits:" + digits[-10:])
        return {hmac.new(self._lookup_key, f.encode(), hashlib.sha256).hexdigest() for f in forms if f}

    def sessions_for(self, value: str) -> set[str]:
        hashes = sorted(self.lookup_hashes(value))
        if not hashes:
            return set()
        params = {f"h{i}": h for i, h in enumerate(hashes)}
        marks = ", ".join(f":h{i}" for i in range(len(hashes)))
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(
                text(f"SELECT DISTINCT session_id FROM vault_lookup WHERE value_hash IN ({marks})"), params)}

    def _remember(self, conn, session_id: str, values: list[str]) -> None:
        for digest in sorted({h for v in values for h in self.lookup_hashes(v)}):
            exists = conn.execute(text("SELECT 1 FROM vault_lookup WHERE session_id = :s AND value_hash = :h"),
                                  {"s": session_id, "h": digest}).first()
            if not exists:
                conn.execute(text("INSERT INTO vault_lookup (session_id, value_hash) VALUES (:s, :h)"),
                             {"s": session_id, "h": digest})

    def _backfill_lookup(self) -> None:
        """Entries written before lookup hashes were kept get theirs (once, at start-up)."""
        with self._lock, self.engine.begin() as conn:
            missing = [r[0] for r in conn.execute(text(
                "SELECT session_id FROM vault WHERE session_id NOT IN (SELECT session_id FROM vault_lookup)"))]
            for session_id in missing:
                mapping = self._load(conn, session_id)
                self._remember(conn, session_id, [v for per in mapping.values() for _, v in per.values()])

    # -- one conversation's mapping -----------------------------------------------------------
    def _load(self, conn, session_id: str) -> dict:
        row = conn.execute(
            text("SELECT ciphertext, expires_at FROM vault WHERE session_id = :s"), {"s": session_id}
        ).first()
        if row is None or row.expires_at <= _now():
            return {}
        return json.loads(self._fernet.decrypt(row.ciphertext.encode()))

    def _save(self, conn, session_id: str, mapping: dict) -> None:
        blob = self._fernet.encrypt(json.dumps(mapping).encode()).decode()
        expires = (datetime.now(timezone.utc) + self.ttl).isoformat(timespec="seconds")
        conn.execute(text("DELETE FROM vault WHERE session_id = :s"), {"s": session_id})
        conn.execute(text("INSERT INTO vault (session_id, ciphertext, expires_at) VALUES (:s, :c, :e)"),
                     {"s": session_id, "c": blob, "e": expires})

    def pseudonymize(self, session_id: str, text_in: str, spans: list[tuple[int, int, str]]) -> str:
        """Replace each (start, end, type) span with that value's placeholder in this conversation."""
        if not spans:
            return text_in
        with self._lock, self.engine.begin() as conn:
            mapping = self._load(conn, session_id)  # {"TYPE": {"normalised value": [n, "value"]}}
            out = text_in
            new_values = []
            for start, end, kind in sorted(spans, reverse=True):
                value = text_in[start:end]
                norm = " ".join(value.lower().split())
                per_type = mapping.setdefault(kind, {})
                if norm not in per_type:
                    per_type[norm] = [len(per_type) + 1, value]
                    new_values.append(value)
                out = out[:start] + f"<{kind}_{per_type[norm][0]}>" + out[end:]
            self._save(conn, session_id, mapping)
            self._remember(conn, session_id, new_values)
        return out

    def reveal(self, session_id: str, text_in: str) -> str:
        """Placeholders back to values, for the agent's eyes only. Unknown ones stay as they are."""
        if not PLACEHOLDER.search(text_in):
            return text_in
        with self.engine.connect() as conn:
            mapping = self._load(conn, session_id)
        values = {(kind, n): value for kind, per in mapping.items() for n, value in per.values()}
        return PLACEHOLDER.sub(lambda m: values.get((m.group(1), int(m.group(2))), m.group(0)), text_in)

    def purge_expired(self) -> int:
        with self.engine.begin() as conn:
            return conn.execute(text("DELETE FROM vault WHERE expires_at <= :now"), {"now": _now()}).rowcount

    def forget(self, session_id: str) -> None:
        self.forget_all([session_id])

    def forget_all(self, session_ids: list[str]) -> int:
        """Erase conversations' entries and lookup hashes; returns how many entries went."""
        removed = 0
        with self._lock, self.engine.begin() as conn:
            for session_id in session_ids:
                removed += conn.execute(text("DELETE FROM vault WHERE session_id = :s"), {"s": session_id}).rowcount
                conn.execute(text("DELETE FROM vault_lookup WHERE session_id = :s"), {"s": session_id})
        return removed


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# Tables this module owns (see core.db): append only, never edit one that has shipped.
def m003_vault(conn: Connection) -> None:
    """Per-conversation pseudonym maps, encrypted; the key is never stored here."""
    conn.execute(text("""
        CREATE TABLE vault (
            session_id TEXT PRIMARY KEY,
            ciphertext TEXT NOT NULL,
            expires_at TEXT NOT NULL
        )"""))
    conn.execute(text("CREATE INDEX ix_vault_expires ON vault (expires_at)"))
    conn.execute(text("CREATE TABLE vault_meta (key_check TEXT NOT NULL)"))


def m002_lookup(conn: Connection) -> None:
    """Keyed hashes of the values in each entry (see `Vault.lookup_hashes`), for erasure."""
    conn.execute(text("CREATE TABLE vault_lookup (session_id VARCHAR(128) NOT NULL, value_hash VARCHAR(64) NOT NULL)"))
    conn.execute(text("CREATE INDEX ix_vault_lookup_hash ON vault_lookup (value_hash)"))
    conn.execute(text("CREATE INDEX ix_vault_lookup_session ON vault_lookup (session_id)"))


MIGRATIONS: list[Migration] = [("003_vault", m003_vault), ("guardrails.vault.002_lookup", m002_lookup)]
