"""Training datasets from what agents and reviewers said about answers: SFT, DPO and KTO rows.

Every row carries the prompt exactly as the model saw it at serving time (the
chat messages, passages included) and keeps its lineage: the exchange and the
feedback or review decision it came from, or the knowledge-base chunk a
synthetic row was made from. Rows are deduplicated, split by conversation (no
conversation in both train and eval), and the content hash of the rows is the
dataset's version. Nothing is written until a scan for raw PII has passed.

The rows are TRL's conversational formats: SFT `{"prompt", "completion"}`,
DPO `{"prompt", "chosen", "rejected"}`, KTO `{"prompt", "completion", "label"}`,
each message list in chat-template form; `datasets.load_dataset("json", ...)`
reads the files.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Sequence

from sqlalchemy import Connection, Engine, text

from core.db import Migration
from core.errors import HelpdeskError

log = logging.getLogger(__name__)
KINDS = ("sft", "dpo", "kto")
EVAL_SHARE = 0.2


class PiiInDataset(HelpdeskError):
    """The build found raw personal data in a row: nothing was written."""


@dataclass(frozen=True)
class Row:
    kind: str  # sft | dpo | kto
    conversation: str  # what the split keeps together
    data: dict  # the TRL row
    lineage: dict  # {"exchange_id"?, "feedback_id"?, "decision_id"?, "chunk_id"?, "origin"}
    split: str = ""

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps([self.kind, self.data], sort_keys=True).encode()).hexdigest()


@dataclass
class Built:
    version: str
    rows: dict[str, int]
    path: Path
    splits: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"version": self.version, "rows": self.rows, "path": str(self.path), "splits": self.splits}


_MARKER = re.compile(r"\s*\[\d+\]")


def assistant_turn(content: str) -> list[dict]:
    """An answer as the model is to write it: without citation markers, which the service adds
    to what the model writes (`ExtractiveAnswerer.cite`). Taught the markers, a small model
    learns them first, as the most frequent thing in every answer, and opens with one."""
    return [{"role": "assistant", "content": _MARKER.sub("", content).strip()}]


def rows_from_exchange(record: dict, feedback: Sequence[dict], decision: dict | None) -> list[Row]:
    """The rows one logged exchange yields. `feedback` is its current feedback (every actor's
    latest); `decision` the review item's decision with its reference answer, if decided."""
    prompt = record.get("messages")
    if not prompt:  # logged before prompts were kept, or a fixed reply (blocked, handed off)
        return []
    conversation = record["session_id"]
    base = {"exchange_id": record["id"]}
    rows: list[Row] = []
    raw = (record.get("raw_answer") or "").strip()
    references: list[tuple[str, dict]] = []
    if decision and decision.get("decision") in ("approve", "correct") and decision.get("answer"):
        references.append((decision["answer"], {**base, "decision": decision["decision"], "origin": "review"}))
    for f in feedback:
        if f["correction"]:
            references.append((f["correction"], {**base, "feedback_id": f["id"], "origin": "feedback"}))
        rows.append(Row("kto", conversation, {"prompt": prompt, "completion": assistant_turn(record["answer"]),
                                              "label": f["rating"] == "up"},
                        {**base, "feedback_id": f["id"], "origin": "feedback"}))
    if decision and decision.get("decision") == "reject":
        rows.append(Row("kto", conversation, {"prompt": prompt, "completion": assistant_turn(record["answer"]),
                                              "label": False}, {**base, "decision": "reject", "origin": "review"}))
    for answer, lineage in references:
        rows.append(Row("sft", conversation, {"prompt": prompt, "completion": assistant_turn(answer)}, lineage))
        corrected = lineage.get("decision") == "correct" or lineage["origin"] == "feedback"
        if corrected and raw and raw != answer.strip():
            rows.append(Row("dpo", conversation, {"prompt": prompt, "chosen": assistant_turn(answer),
                                                  "rejected": assistant_turn(raw)}, lineage))
    return rows


def split_of(conversation: str, eval_share: float = EVAL_SHARE) -> str:
    """A conversation's split, fixed by its id: every row of it lands on the same side."""
    bucket = int(hashlib.sha256(conversation.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "eval" if bucket < eval_share else "train"


def deduplicated(rows: Iterable[Row]) -> list[Row]:
    seen: dict[str, Row] = {}
    for row in rows:
        seen.setdefault(row.key, row)
    return sorted(seen.values(), key=lambda r: (r.kind, r.key))


def version_of(rows: Sequence[Row]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update(row.key.encode())
        digest.update(row.split.encode())
    return digest.hexdigest()[:12]


def _passages(prompt: list[dict]) -> str:
    """The knowledge base's passages in a prompt as served: the last user message is
    "Context:\n<passages>\n\nQuestion: <question>" (`assistant.prompt.build_messages`); the
    question and earlier turns are people's words, so they are not passages."""
    users = [m for m in prompt if m.get("role") == "user"]
    content = str(users[-1].get("content", "")) if users else ""
    if not content.startswith("Context:") or "\n\nQuestion: " not in content:
        return ""
    return content.rsplit("\n\nQuestion: ", 1)[0]


def scan_rows(rows: Sequence[Row], find_pii: Callable[[str, bool, str], list[str]]) -> list[str]:
    """Where raw PII is, as `kind row N field: ENTITY`. `find_pii(text, knowledge_base, passages)`
    returns the entity types found. Text from the knowledge base (prompts, which carry its
    passages, and synthetic answers, which quote them) is scanned for the entities documents are
    redacted for; what people wrote or the model said, for all of them, except words it copied
    from the row's prompt (the passages)."""
    found = []
    for n, row in enumerate(rows):
        synthetic = row.lineage.get("origin") == "synthetic"
        passages = _passages(row.data.get("prompt", []))
        for key, value in row.data.items():
            if not isinstance(value, list):
                continue
            for message in value:
                if message["role"] == "system":
                    continue  # the product's own prompt
                if key == "prompt" or synthetic:
                    hits = find_pii(message["content"], True, "")
                else:
                    hits = find_pii(message["content"], False, passages)
                found.extend(f"{row.kind} row {n} {key}: {t}" for t in hits)
    return found


def build(rows: Iterable[Row], out_dir: Path, find_pii: Callable[[str, bool, str], list[str]],
          engine: Engine | None = None, built_by: str = "") -> Built:
    """Deduplicate, split, scan, then write `out_dir/<version>/` (and the lineage rows)."""
    unique = [Row(r.kind, r.conversation, r.data, r.lineage, split_of(r.conversation)) for r in deduplicated(rows)]
    leaks = scan_rows(unique, find_pii)
    if leaks:
        raise PiiInDataset(f"raw personal data in {len(leaks)} places, nothing written: " + "; ".join(leaks[:5]))
    version = version_of(unique)
    folder = out_dir / version
    counts = {k: sum(1 for r in unique if r.kind == k) for k in KINDS}
    splits = {k: {s: sum(1 for r in unique if r.kind == k and r.split == s) for s in ("train", "eval")} for k in KINDS}
    if not (folder / "manifest.json").exists():
        tmp = out_dir / f".{version}.partial"
        tmp.mkdir(parents=True, exist_ok=True)
        for kind in KINDS:
            for split in ("train", "eval"):
                with (tmp / f"{kind}_{split}.jsonl").open("w", encoding="utf-8") as fh:
                    for r in unique:
                        if r.kind == kind and r.split == split:
                            fh.write(json.dumps({**r.data, "lineage": r.lineage}, ensure_ascii=False) + "\n")
        (tmp / "manifest.json").write_text(json.dumps({"version": version, "rows": counts, "splits": splits},
                                                      indent=2))
        tmp.rename(folder)
    if engine is not None:
        record_lineage(engine, version, unique, counts, built_by)
    return Built(version, counts, folder, splits)


def latest_version(engine: Engine) -> str | None:
    """The most recently built dataset version."""
    with engine.connect() as conn:
        row = conn.execute(text("SELECT version FROM datasets ORDER BY built_at DESC, version LIMIT 1")).first()
    return row[0] if row else None


def latest_built(engine: Engine) -> dict | None:
    """The most recent build: version, row counts, who built it and when."""
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM datasets ORDER BY built_at DESC, version LIMIT 1")).first()
    return dict(row._mapping) | {"rows": json.loads(row.rows)} if row else None


def record_lineage(engine: Engine, version: str, rows: Sequence[Row], counts: dict, built_by: str) -> None:
    """One row per dataset row: which exchange, feedback, decision or chunk it came from."""
    with engine.begin() as conn:
        if conn.execute(text("SELECT 1 FROM datasets WHERE version = :v"), {"v": version}).first():
            return  # the same content built again: same version, lineage already there
        conn.execute(text("INSERT INTO datasets (version, rows, built_by, built_at) VALUES (:v, :r, :b, :at)"),
                     {"v": version, "r": json.dumps(counts), "b": built_by,
                      "at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        if not rows:
            return
        conn.execute(text(
            "INSERT INTO dataset_rows (id, version, kind, split, row_key, origin, exchange_id, feedback_id, "
            "chunk_id) VALUES (:id, :v, :kind, :split, :key, :origin, :e, :f, :c)"
        ), [{"id": uuid.uuid4().hex, "v": version, "kind": r.kind, "split": r.split, "key": r.key,
             "origin": r.lineage.get("origin"), "e": r.lineage.get("exchange_id"), "f": r.lineage.get("feedback_id"),
             "c": r.lineage.get("chunk_id")} for r in rows])


def m001_datasets(conn: Connection) -> None:
    conn.execute(text("""
        CREATE TABLE datasets (
            version VARCHAR(40) PRIMARY KEY,
            rows TEXT NOT NULL,
            built_by VARCHAR(200) NOT NULL,
            built_at VARCHAR(40) NOT NULL
        )"""))
    conn.execute(text("""
        CREATE TABLE dataset_rows (
            id VARCHAR(32) PRIMARY KEY,
            version VARCHAR(40) NOT NULL,
            kind VARCHAR(8) NOT NULL,
            split VARCHAR(8) NOT NULL,
            row_key VARCHAR(64) NOT NULL,
            origin VARCHAR(20),
            exchange_id VARCHAR(32),
            feedback_id VARCHAR(32),
            chunk_id VARCHAR(64)
        )"""))
    conn.execute(text("CREATE INDEX ix_dataset_rows_exchange ON dataset_rows (exchange_id)"))
    conn.execute(text("CREATE INDEX ix_dataset_rows_version ON dataset_rows (version)"))


MIGRATIONS: list[Migration] = [("finetune.001_datasets", m001_datasets)]
