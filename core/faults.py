"""Crash points: where the fault tests kill a process as `kill -9` would, at an exact step.

`HELPDESK_CRASH_AT=<name>` in a process's environment makes it send itself SIGKILL when it
reaches `crash_point(<name>)`: no cleanup, no finally blocks, no flushed buffers. Each point
sits between two writes whose order matters, so a test can prove that a restart finds a
consistent state there. Unset (always, outside those tests), a point costs one lookup.
"""
from __future__ import annotations

import os
import signal


def crash_point(name: str) -> None:
    if os.environ.get("HELPDESK_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
