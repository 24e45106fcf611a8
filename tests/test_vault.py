"""The pseudonym vault: encrypted at rest, key never in the database, expiry, fail closed."""
from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from core.errors import ConfigError
from assistant.database import open_database
from guardrails.vault import KEY_ENV, Vault, load_key


@pytest.fixture()
def engine(tmp_path):
    return open_database(f"sqlite:///{tmp_path / 'v.db'}")


def test_values_are_encrypted_at_rest_and_the_key_is_not_in_the_database(tmp_path, engine, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    key_file = tmp_path / "vault.key"
    key = load_key(key_file, engine)
    assert key_file.stat().st_mode & 0o777 == 0o600
    vault = Vault(engine, key)
    text = "Call Maria Gonzalez"
    assert vault.pseudonymize("s1", text, [(5, 19, "PERSON")]) == "Call <PERSON_1>"
    # A plaintext row written the same way: the bytes read must be where new rows live (WAL
    # mode keeps them in v.db-wal until a checkpoint), or this test could not fail.
    from sqlalchemy import text as sql

    with engine.begin() as conn:
        conn.execute(sql("INSERT INTO schema_migrations (name, applied_at) VALUES ('canary-plaintext', 'now')"))
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("v.db*"))
    assert b"canary-plaintext" in raw
    assert b"Maria" not in raw and key not in raw
    assert vault.reveal("s1", "Dear <PERSON_1>") == "Dear Maria Gonzalez"


def test_expired_conversations_are_forgotten(engine):
    vault = Vault(engine, Fernet.generate_key(), ttl_hours=-1)  # already expired when written
    vault.pseudonymize("s1", "Hi Ann Lee", [(3, 10, "PERSON")])
    assert vault.reveal("s1", "<PERSON_1>") == "<PERSON_1>"
    assert vault.purge_expired() == 1


def test_missing_key_for_an_existing_vault_stops_start_up(tmp_path, engine, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    key_file = tmp_path / "vault.key"
    Vault(engine, load_key(key_file, engine))
    key_file.unlink()
    with pytest.raises(ConfigError, match="vault key is missing"):
        load_key(key_file, engine)


def test_wrong_key_stops_start_up(engine):
    Vault(engine, Fernet.generate_key())
    with pytest.raises(ConfigError, match="does not match"):
        Vault(engine, Fernet.generate_key())


def test_malformed_key_is_refused(tmp_path, engine, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "not-a-key")
    with pytest.raises(ConfigError, match="not a valid Fernet key"):
        load_key(tmp_path / "vault.key", engine)


def test_a_vault_that_fails_mid_turn_blocks_the_message(services, monkeypatch):
    from guardrails.guard import Guard

    def broken(*args, **kwargs):
        raise RuntimeError("vault unreadable")

    guard = Guard.from_file(vault=services.vault)
    monkeypatch.setattr(services.vault, "pseudonymize", broken)
    verdict = guard.inspect_input("Mail me at ann.lee@example.com", "session-x")
    assert verdict.action.value == "block" and "check_error:vault" in verdict.reasons
    assert "ann.lee@example.com" not in verdict.redacted_text
