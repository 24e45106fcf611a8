"""Adapter registry: which LoRA adapter version the generator serves.

Layout under the data directory: `adapters/<version>/` holds a peft adapter
with its `adapter_config.json`; `adapters/current` names the promoted
version. No file means the base model serves alone.
"""
from __future__ import annotations

from pathlib import Path

from core.errors import ModelUnavailable


def current_adapter(adapters_dir: Path) -> tuple[str, Path] | None:
    """The promoted adapter's (version, folder), or None when the base model serves alone."""
    pointer = adapters_dir / "current"
    if not pointer.exists():
        return None
    version = pointer.read_text(encoding="utf-8").strip()
    folder = adapters_dir / version
    if not version or not (folder / "adapter_config.json").exists():
        # Fail closed: a promoted adapter that is gone must not silently become the base model.
        raise ModelUnavailable(f"{pointer} names adapter {version!r}, but {folder} holds no adapter")
    return version, folder
