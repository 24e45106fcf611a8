"""The app's database: one engine, with every package's tables migrated."""
from __future__ import annotations

from sqlalchemy import Engine

from assistant import audit, feedback, review, store, users
from core.db import connect
from finetune import ab, datasets, jobs, registry
from guardrails import vault
from retrieval import catalog


def open_database(url: str) -> Engine:
    return connect(url, [store.MIGRATIONS, catalog.MIGRATIONS, vault.MIGRATIONS, feedback.MIGRATIONS,
                        review.MIGRATIONS, datasets.MIGRATIONS, jobs.MIGRATIONS, registry.MIGRATIONS,
                        ab.MIGRATIONS, users.MIGRATIONS, audit.MIGRATIONS])
