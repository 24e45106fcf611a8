"""Errors meant for people. Raised once, converted at the edge (CLI, HTTP, UI)."""
from __future__ import annotations


class HelpdeskError(Exception):
    """An error whose message is shown to the user as it is."""


class ConfigError(HelpdeskError):
    """Settings or policy are invalid: start-up must stop."""


class BadInput(HelpdeskError):
    """A request or a file the user gave cannot be used."""


class ModelUnavailable(HelpdeskError):
    """A model named by the settings cannot be found or loaded."""


class TurnNotLogged(HelpdeskError):
    """A turn's exchange could not be written: its answer must not be shown."""


class NotFound(HelpdeskError):
    """What the request names does not exist (or is not the caller's to see)."""


class Conflict(HelpdeskError):
    """The request clashes with the current state, e.g. an item another reviewer holds."""


class Unauthorized(HelpdeskError):
    """No valid credentials: not logged in, an unknown or revoked token, a removed user."""


class Forbidden(HelpdeskError):
    """The caller is known, but their role does not allow this."""


class StorageUnavailable(HelpdeskError):
    """The database or the data directory cannot be written: read-only, full, or gone."""
