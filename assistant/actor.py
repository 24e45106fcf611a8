"""Who is acting: every service call carries one, so role checks and audit rows live in the
services, not in each door (UI, HTTP API, CLI)."""
from __future__ import annotations

import getpass
from dataclasses import asdict, dataclass
from typing import Literal

from core.errors import Forbidden

Role = Literal["agent", "reviewer", "admin"]
Via = Literal["ui", "api", "cli"]
ROLES: tuple[Role, ...] = ("agent", "reviewer", "admin")  # each can do everything the one before can


@dataclass(frozen=True)
class Actor:
    id: str  # the user's name; `cli:<os user>` for the local operator
    role: Role = "agent"
    via: Via = "cli"

    def as_dict(self) -> dict:
        return asdict(self)

    def can(self, role: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def require(actor: Actor, role: Role) -> Actor:
    """The one role check every service makes; Forbidden (403) when the actor's role is lower."""
    if not actor.can(role):
        raise Forbidden(f"this needs the {role} role; {actor.id} has the {actor.role} role")
    return actor


def cli_actor() -> Actor:
    """The local operator running `helpdesk ...`: whoever can run commands on the server's machine
    can read its database and settings anyway, so the CLI acts as an admin."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        name = "local"
    return Actor(f"cli:{name}", "admin", "cli")
