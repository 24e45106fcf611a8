"""`helpdesk scan-pii`: look for personal data at rest that redaction should have removed.

Every stored text is run through the policy's recognizers again: every table's
text columns (JSON columns by their string values), the vector store's
documents and metadata, and the text files in the data directory (datasets,
labelled data, adapters' records). A hit inside a placeholder (`<PERSON_1>`)
is not a finding. The knowledge base is scanned for the entities it is
redacted for (`retrieval.redact_entities`); everything else for all of the
policy's. Findings name where the value is, never the value itself.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

from sqlalchemy import Engine, String, Text, inspect, text

log = logging.getLogger(__name__)
PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*>")
# Tables whose text is encrypted or holds no free text.
SKIP_TABLES = {"vault", "vault_meta", "schema_migrations"}
# The catalog holds the knowledge base's names and titles: scanned like the documents.
KB_TABLES = {"documents", "document_chunks", "pending_ingests"}
# Folders of the data directory that hold no free text of ours (or are scanned otherwise).
SKIP_DIRS = {"chroma", "models", "uploads"}
TEXT_SUFFIXES = {".jsonl", ".json", ".csv", ".txt", ".md", ".tsv", ".log"}
# Not free text: ids, entity names, and the reason codes verdicts carry ("sentiment:human_request",
# "generated:output_pii:PERSON"), which spaCy would otherwise read as names.
_NOT_FREE_TEXT = re.compile(r"^[0-9a-f]{16,64}$|^[A-Z][A-Z0-9_]*$|^[a-z][a-z0-9_]*(:[A-Za-z0-9_.-]+)*$"
                            r"|^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)?)?$")  # timestamps


@dataclass(frozen=True)
class Finding:
    where: str  # table.column, chroma:<collection>.document|metadata.<key>, or a file path
    record: str  # the row's id, the chunk id, or the line number
    entity: str
    start: int
    end: int
    score: float

    def as_dict(self) -> dict:
        return asdict(self)


def scan_texts(redactor, texts: Iterator[tuple], entities: Sequence[str] | None) -> Iterator[Finding]:
    """Findings in (where, record, text[, passages]) tuples."""
    for where, record, value, *passages in texts:
        if not value or not value.strip():
            continue
        placeholders = [m.span() for m in PLACEHOLDER.finditer(value)]
        for entity in redactor.analyze(value, entities):
            if any(s < entity.end and entity.start < e for s, e in placeholders):
                continue  # a placeholder, or a span that only touches one
            if passages and passages[0] and value[entity.start:entity.end] in passages[0]:
                continue  # an answer's words copied from its passages, which the output check leaves
            yield Finding(where, record, entity.type, entity.start, entity.end, round(entity.score, 3))


def database_texts(engine: Engine, tables: set[str] | None = None,
                   exclude: set[str] = frozenset()) -> Iterator[tuple[str, str, str, str]]:
    """(where, record, text, passages): `passages` is what an exchange's answer may quote."""
    inspector = inspect(engine)
    for table in sorted(inspector.get_table_names()):
        if table in SKIP_TABLES or table in exclude or (tables is not None and table not in tables):
            continue
        columns = [c["name"] for c in inspector.get_columns(table) if isinstance(c["type"], (String, Text))]
        keys = inspector.get_pk_constraint(table).get("constrained_columns") or []
        if not columns:
            continue
        with engine.connect() as conn:
            rows = conn.execute(text(f'SELECT * FROM "{table}"'))
            for number, row in enumerate(rows, 1):
                values = row._mapping
                record = "/".join(str(values[k]) for k in keys) if keys else f"row {number}"
                # An exchange's answer may quote its passages (the `sources` column), as shown.
                passages = "\n".join(_strings(values["sources"])) if table == "exchanges" else ""
                for column in columns:
                    for value in _strings(values[column]):
                        yield f"{table}.{column}", record, value, passages if column == "answer" else ""


def chroma_texts(collection) -> Iterator[tuple[str, str, str]]:
    """The collection's documents and string metadata, a page at a time."""
    name, offset, page = collection.name, 0, 500
    while True:
        got = collection.get(include=["documents", "metadatas"], limit=page, offset=offset)
        ids = got["ids"]
        if not ids:
            return
        for cid, doc, meta in zip(ids, got["documents"] or [None] * len(ids), got["metadatas"] or [None] * len(ids)):
            if doc:
                yield f"chroma:{name}.document", cid, doc
            for key, value in (meta or {}).items():
                if isinstance(value, str):
                    yield f"chroma:{name}.metadata.{key}", cid, value
        offset += len(ids)


def file_texts(home: Path) -> Iterator[tuple[str, str, str]]:
    """Text files under the data directory, a line at a time (JSON lines by their string values)."""
    for path in sorted(home.rglob("*")):
        relative = path.relative_to(home)
        if not path.is_file() or path.suffix.lower() not in TEXT_SUFFIXES or relative.parts[0] in SKIP_DIRS:
            continue
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (UnicodeDecodeError, OSError) as exc:
            log.warning("scan-pii: cannot read %s: %s", path, exc)
            continue
        for number, line in enumerate(lines, 1):
            for value in _strings(line):
                yield str(relative), f"line {number}", value


def _strings(value) -> Iterator[str]:
    """A column's or a line's free text: JSON is read for its string values (not its keys,
    numbers or ids), so a score or a latency never reads as a phone number."""
    if not isinstance(value, str):
        return
    stripped = value.strip()
    if stripped[:1] in "[{":
        try:
            parsed = json.loads(stripped)
        except ValueError:
            yield value
            return
        yield from _leaves(parsed)
    elif not _NOT_FREE_TEXT.match(stripped):
        yield value


def _leaves(obj) -> Iterator[str]:
    if isinstance(obj, str):
        if not _NOT_FREE_TEXT.match(obj):
            yield obj
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _leaves(item)
    elif isinstance(obj, list):
        for item in obj:
            yield from _leaves(item)


def scan_pii(services) -> list[Finding]:
    """Every finding in the store, the vector store and the data directory."""
    redactor = services.guard.redactor
    kb_entities = services.settings.retrieval.redact_entities
    findings = [
        *scan_texts(redactor, database_texts(services.engine, exclude=KB_TABLES), None),
        *scan_texts(redactor, database_texts(services.engine, tables=KB_TABLES), kb_entities),
        *scan_texts(redactor, chroma_texts(services.vectors.collection), kb_entities),
        *scan_texts(redactor, file_texts(services.settings.home), None),
    ]
    return findings
