"""Who is acting: every service call carries one, so role checks and audit rows live in the
services, not in each door (UI, HTTP API, CLI)."""
from __future__ import annotations

import getpass
from dataclasses import asdict, dataclass
from typing import Literal

Role = Literal["agent", "reviewer", "admin"]
Via = Literal["ui", "api", "cli"]


@dataclass(frozen=True)
class Actor:
    id: str  # a user id once users exist; until then the browser session, API caller or OS user
    role: Role = "agent"
    via: Via = "cli"

    def as_dict(self) -> dict:
        return asdict(self)


def cli_actor() -> Actor:
    """The local operator running `helpdesk ...` (trusted with every role until users exist)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        name = "local"
    return Actor(f"cli:{name}", "admin", "cli")
