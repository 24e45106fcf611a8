"""What every `helpdesk` command shares: JSON output, the services, who is acting."""
from __future__ import annotations

import json
import os
import sys
from typing import Any

from core.errors import HelpdeskError


def offline_env() -> None:
    # Weights come from local packages; never try the model hub, never phone home.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def open_services(args):
    from assistant.app import Services
    from core.settings import load_settings

    settings = load_settings(args.config)
    if getattr(args, "collection", None):
        try:
            settings.retrieval.collection = args.collection
        except ValueError as exc:
            raise HelpdeskError(f"--collection: {exc.errors()[0]['msg']}") from None
    return Services(settings)


def actor_of(args):
    from assistant.actor import Actor, cli_actor

    return Actor(f"cli:{args.as_user}", "admin", "cli") if getattr(args, "as_user", None) else cli_actor()
