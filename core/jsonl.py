"""Reading JSONL files that people write by hand: errors name the file and the line."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator

from core.errors import BadInput


def read_jsonl(path: Path, valid: Callable[[object], bool], expected: str) -> Iterator[dict]:
    """Yield each non-blank line's object; `valid` says whether it has the fields `expected` describes."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None
    found = False
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{path}:{n}: not JSON: {exc.msg}") from None
        if not isinstance(row, dict) or not valid(row):
            raise BadInput(f"{path}:{n}: needs {expected}")
        found = True
        yield row
    if not found:
        raise BadInput(f"{path}: no rows")
