"""Server mode: ingest and search against a real `chroma run` server on loopback."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.database import open_database
from retrieval.catalog import Catalog
from retrieval.ingest import Ingestor
from retrieval.search import Retriever
from retrieval.store import VectorStore, make_client
from tests.conftest import SAMPLE_KB


@pytest.fixture()
def chroma_server(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    chroma = Path(sys.executable).with_name("chroma")
    proc = subprocess.Popen(
        [str(chroma), "run", "--path", str(tmp_path / "server-data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("chroma server did not start")
                time.sleep(0.3)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_ingest_and_search_against_a_chroma_server(chroma_server, services, tmp_path):
    store = VectorStore(make_client(host="127.0.0.1", port=chroma_server), "server-kb")
    catalog = Catalog(open_database(f"sqlite:///{tmp_path / 'kb.db'}"), "server-kb")
    ingestor = Ingestor(store, catalog, services.embedder, 900, 120, 1_000_000)
    files = [SAMPLE_KB / "order-tracking.md", SAMPLE_KB / "returns-policy.md"]
    summary = ingestor.ingest(files)
    assert summary.files == 2 and summary.chunks_added == store.count() > 2
    again = ingestor.ingest(files)
    assert again.chunks_added == 0
    hits = Retriever(store, services.embedder, k=3, catalog=catalog).search("where is my tracking number?")
    assert hits[0].source == "order-tracking.md"
    # A second client sees the same data: it lives in the server, not in this process.
    other = VectorStore(make_client(host="127.0.0.1", port=chroma_server), "server-kb")
    assert other.count() == store.count()
