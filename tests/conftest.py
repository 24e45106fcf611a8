"""Shared fixtures: real Presidio, real Chroma, real SQLite and a tiny real transformer.

The tiny model is a random 2-layer Llama with SmolLM2's tokenizer (3.2M params):
it exercises the real loading, chat-template and streaming code in a blink.
Its answers are noise, so tests assert on the pipeline, not on wording.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parent.parent
SAMPLE_KB = REPO / "retrieval" / "sample_kb"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from assistant.generator import packaged_gguf

    gguf = packaged_gguf()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        max_position_embeddings=4096,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def settings_env(home: Path, model_dir: Path) -> dict[str, str]:
    """Environment for a `helpdesk` process that uses the tiny model and a private data dir."""
    return {
        "HELPDESK_HOME": str(home),
        "HELPDESK_MODEL__PATH": str(model_dir),
        "HELPDESK_MODEL__DEVICE": "cpu",
        "HELPDESK_MODEL__MAX_NEW_TOKENS": "24",
        # A random model decoded greedily repeats one token (often a newline); sampling
        # gives visible text, which is all these tests need from it.
        "HELPDESK_MODEL__TEMPERATURE": "1.0",
        # Trained guardrail classifiers are shared by every test home: they depend only on
        # the labelled data, and training them once per home would dominate the suite.
        "HELPDESK_GUARDRAILS__CLASSIFIER_CACHE": str(model_dir.parent / "classifiers"),
        # The suite's few users send far more turns a minute than a person would; the limit itself
        # is tested with its own settings (test_load.py).
        "HELPDESK_SERVER__USER_TURNS_PER_MINUTE": "100000",
    }


@pytest.fixture(scope="session")
def make_settings(tiny_model_dir):
    from core.settings import load_settings

    def make(home: Path, **env) -> object:
        environ = {**settings_env(home, tiny_model_dir), **env}
        return load_settings(None, environ=environ)

    return make


@pytest.fixture(scope="session")
def services(tmp_path_factory, make_settings):
    """One fully built app (sample knowledge base ingested) shared by the read-mostly tests."""
    from assistant.app import Services

    home = tmp_path_factory.mktemp("home")
    svc = Services(make_settings(home))
    summary = svc.ensure_samples()
    assert summary is not None and summary.chunks_added > 100 and not summary.errors
    return svc


@pytest.fixture(scope="session")
def people(services) -> dict:
    """One user per role on the shared app: name, password (for the browser's login page) and
    the `Authorization` header of an API token (for HTTP)."""
    from types import SimpleNamespace

    from assistant.actor import ROLES, cli_actor

    out = {}
    for role in ROLES:
        name = f"test-{role}"
        _, password = services.users.add(cli_actor(), name, role, None)
        _, token = services.users.create_token(cli_actor(), name, "tests")
        out[role] = SimpleNamespace(name=name, password=password, headers={"Authorization": f"Bearer {token}"})
    return out


@pytest.fixture(scope="session")
def server(services):
    """The real HTTP server (uvicorn: API + Gradio UI) on a free loopback port."""
    import uvicorn

    from assistant.server import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(services), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not srv.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def _pg_binary(name: str) -> str | None:
    import glob
    import shutil

    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    """A real PostgreSQL server for the session (Debian's `postgresql` package: initdb, pg_ctl),
    on a free loopback port, in a temporary data directory; stopped at the end. Skipped, saying
    why, only where PostgreSQL or psycopg cannot be installed."""
    import shutil
    import subprocess

    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; `make test` does)")
    try:
        import psycopg  # noqa: F401  (the driver SQLAlchemy's postgresql+psycopg URL loads)
    except ImportError:
        pytest.skip("psycopg is not installed (pip install -e '.[dev]')")
    import tempfile

    # Not under pytest's temporary folder: that one is private to root, and the server runs as
    # another user.
    root = Path(tempfile.mkdtemp(prefix="helpdesk-postgres-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the package's user
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "helpdesk", "-E", "UTF8"],
                   check=True, capture_output=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://helpdesk@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


class ScriptedGenerator:
    """A generator that streams a fixed script, word by word, the way a model streams tokens.

    The tiny random model's answers are noise, which the groundedness check rightly withholds;
    tests of what reaches the screen need an answer whose content they choose. `script` is a
    list of strings or a callable taking the chat messages. `produced` counts the pieces
    yielded so far, so a test can tell what was shown before the answer was done.
    """

    model_name = "scripted"

    def __init__(self, script) -> None:
        self.script = script
        self.produced = 0
        self.finished = False

    def stream(self, messages, served=None, adapter=None):
        import re

        if served is not None:
            served.update(model=self.model_name, adapter=adapter.version if adapter else None,
                          settings={"scripted": True})
        parts = self.script(messages) if callable(self.script) else self.script
        self.produced, self.finished = 0, False
        for part in parts:
            for token in re.findall(r"\S+\s*|\s+", part):
                self.produced += 1
                yield token
        self.finished = True


def quote_first_passage(messages, sentences: int = 2) -> list[str]:
    """A script that answers with the first sentences of the first retrieved passage."""
    from retrieval.rerank import sentences as split

    context = messages[-1]["content"].split("\n\n[2]")[0]
    passage = context.split("\n", 2)[2]  # after "Context:" and "[1] (source)"
    return [s + " " for s in split(passage)[:sentences]]
