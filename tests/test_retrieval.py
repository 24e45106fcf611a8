"""Loaders, chunking, incremental ingest and search against a real Chroma in a temp dir."""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from assistant.database import open_database
from core.errors import BadInput
from retrieval.catalog import Pending
from retrieval.chunking import chunk_document
from retrieval.embed_process import EmbeddingPool, pool_for
from retrieval.loaders import clean_text, load_file
from retrieval.store import VectorStore, make_client
from tests.conftest import SAMPLE_KB

MB = 1_000_000


@pytest.mark.parametrize("raw, clean", [
    ("par\u200bcel\ufeff and\u00ad more", "parcel and more"),          # zero-width, BOM, soft hyphen
    ("bell\x07 and\x1b escape\x7f", "bell and escape"),                 # control characters
    ("\uff21\uff22\uff23 \ufb01le \u2460", "ABC file 1"),                # NFKC: full width, ligature, circled
    ("caf\u00e9 \u65e5\u672c \U0001f600 \u00bd", "caf\u00e9 \u65e5\u672c \U0001f600 1\u20442"),  # letters, emoji stay
    ("a \t  b\r\n\r\n\r\n\nc\u2028d", "a b\n\nc d"),                  # whitespace, one blank line kept
    ("private\ue000use and unassigned\u0378", "privateuse and unassigned"),
])
def test_text_cleaning(raw, clean):
    assert clean_text(raw) == clean


def test_markdown_chunks_keep_headings_and_ids_are_stable():
    doc = load_file(SAMPLE_KB / "returns-policy.md", MB)
    first = chunk_document(doc, 900, 120)
    again = chunk_document(load_file(SAMPLE_KB / "returns-policy.md", MB), 900, 120)
    assert [c.chunk_id for c in first] == [c.chunk_id for c in again]
    assert all(c.source == "returns-policy.md" and c.title for c in first)
    assert any(c.heading for c in first)
    assert all(len(c.text) <= 900 + len(c.title) + len(c.heading) + 10 for c in first)


def test_html_boilerplate_is_dropped():
    doc = load_file(SAMPLE_KB / "help-centre-gift-wrapping.html", MB)
    text = "\n".join(t for _, t in doc.blocks)
    assert "gift" in text.lower()
    for boilerplate in ("<script", "function(", "cookie", "Accept all"):
        assert boilerplate.lower() not in text.lower()


def test_pdf_pages_are_kept():
    doc = load_file(SAMPLE_KB / "appliance-warranty-claims-guide.pdf", MB)
    assert [p for p, _ in doc.blocks][:2] == [1, 2]
    chunks = chunk_document(doc, 900, 120)
    assert {c.page for c in chunks} >= {1, 2}


@pytest.mark.parametrize(
    "name, content, error",
    [
        ("empty.md", b"", "empty"),
        ("binary.txt", b"\x00\x01\x02\xff" * 100, "binary"),
        ("latin1.md", "caf\xe9".encode("latin-1"), "not UTF-8"),
        ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "PDF"),
        ("broken.docx", b"PK\x03\x04 nope", "Word"),
        ("data.xyz", b"hello", "unsupported"),
    ],
)
def test_bad_files_get_clear_errors(tmp_path, name, content, error):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(BadInput, match=error):
        load_file(path, MB)


def test_oversized_file_is_refused(tmp_path):
    path = tmp_path / "big.md"
    path.write_text("# Big\n\n" + "word " * 1000)
    with pytest.raises(BadInput, match="over the"):
        load_file(path, 1000)


@pytest.fixture()
def kb(tmp_path, services):
    """A private knowledge base: real Chroma and SQLite in a temp dir, the shared embedder."""
    from retrieval.catalog import Catalog
    from retrieval.ingest import Ingestor
    from retrieval.search import Retriever

    store = VectorStore(make_client(tmp_path / "chroma"), "test-kb")
    catalog = Catalog(open_database(f"sqlite:///{tmp_path / 'kb.db'}"), "test-kb")
    ingestor = Ingestor(store, catalog, services.embedder, 900, 100, MB,
                        redact=lambda t: services.guard.redact(t, ["EMAIL_ADDRESS"]))
    retriever = Retriever(store, services.embedder, k=3, catalog=catalog)
    docs = tmp_path / "docs"
    docs.mkdir()
    return store, catalog, ingestor, retriever, docs


def test_ingest_is_incremental_and_redacts_pii(kb):
    store, catalog, ingestor, _, docs = kb
    (docs / "a.md").write_text("# Alpha\n\n## Refunds\n\nRefunds take 5 days. Write to pat.example@example.com.\n")
    (docs / "b.md").write_text("# Beta\n\n## Shipping\n\nShipping takes 3 days.\n")
    (docs / "bad.txt").write_bytes(b"\x00\x00binary")

    first = ingestor.ingest([docs])
    assert first.files == 2 and first.chunks_added == 2 and first.pii_redacted == 1
    assert [e["path"] for e in first.errors] == [str(docs / "bad.txt")]
    stored = store.collection.get(include=["documents"])
    assert not any("pat.example@example.com" in d for d in stored["documents"])
    assert any("<EMAIL_ADDRESS>" in d for d in stored["documents"])
    assert [d["source"] for d in catalog.documents()] == ["a.md", "b.md"]

    second = ingestor.ingest([docs])
    assert second.chunks_added == 0 and second.chunks_unchanged == 2 and store.count() == 2

    (docs / "b.md").write_text("# Beta\n\n## Shipping\n\nShipping now takes 2 days.\n")
    third = ingestor.ingest([docs])
    assert third.chunks_added == 1 and third.chunks_unchanged == 1 and store.count() == 2
    texts = store.collection.get(where={"source": "b.md"}, include=["documents"])["documents"]
    assert len(texts) == 1 and "2 days" in texts[0]


def test_identical_chunks_across_files_are_stored_once(kb):
    store, catalog, ingestor, retriever, docs = kb
    text = "# Care\n\n## Oiling\n\nOil the board monthly with food-safe mineral oil.\n"
    (docs / "one.md").write_text(text)
    (docs / "copy.md").write_text(text)
    summary = ingestor.ingest([docs])
    assert summary.files == 2 and store.count() == 1
    assert {d["source"]: d["chunks"] for d in catalog.documents()} == {"copy.md": 1, "one.md": 1}
    first_owner = retriever.search("oil the board", 1)[0].source
    assert ingestor.remove(first_owner) == 1
    assert store.count() == 1, "the other document still uses the chunk"
    survivor = ({"one.md", "copy.md"} - {first_owner}).pop()
    assert retriever.search("oil the board", 1)[0].source == survivor
    ingestor.remove(survivor)
    assert store.count() == 0 and catalog.documents() == []


def test_small_files_are_written_in_one_batch(kb):
    store, catalog, ingestor, retriever, docs = kb
    for i in range(12):
        (docs / f"note-{i:02d}.md").write_text(f"# Note {i}\n\n## Topic\n\nLantern model {i} needs {i + 2} batteries.\n")
    writes = store._writes
    told: list[dict] = []
    summary = ingestor.ingest([docs], on_file=told.append)
    assert summary.files == 12 and summary.chunks_added == 12 and not summary.errors
    assert store._writes == writes + 1, "twelve files, one vector-store write"
    assert told == summary.per_file and len(told) == 12, "each file's outcome, as it ended"
    assert {Path(o["path"]).name: (o["status"], o["chunks_added"]) for o in told} == {
        f"note-{i:02d}.md": ("ok", 1) for i in range(12)}
    assert len(catalog.documents()) == 12 and catalog.pending() == []
    assert retriever.search("lantern model 7 batteries", 1)[0].source == "note-07.md"


def test_a_batch_that_fails_to_embed_reports_each_file_and_keeps_nothing(kb, monkeypatch):
    store, catalog, ingestor, retriever, docs = kb
    for name in ("a.md", "b.md"):
        (docs / name).write_text(f"# {name}\n\n## Part\n\nText of {name}.\n")
    (docs / "bad.txt").write_bytes(b"\x00\x00binary")

    def fail(texts, **kwargs):
        raise RuntimeError("embedding model crashed")

    monkeypatch.setattr(ingestor.embedder, "embed", fail)
    summary = ingestor.ingest([docs])
    errors = {Path(e["path"]).name: e["error"] for e in summary.errors}
    assert summary.files == 0 and set(errors) == {"a.md", "b.md", "bad.txt"}
    assert "embedding model crashed" in errors["a.md"]
    assert {o["status"] for o in summary.per_file} == {"error"} and len(summary.per_file) == 3
    assert store.count() == 0 and catalog.documents() == [] and catalog.pending() == []
    monkeypatch.undo()
    assert ingestor.ingest([docs]).chunks_added == 2, "nothing was half-written"


def test_a_later_file_of_the_same_name_replaces_the_earlier(kb):
    store, catalog, ingestor, retriever, docs = kb
    for folder, days in (("old", 30), ("new", 45)):
        (docs / folder).mkdir()
        (docs / folder / "policy.md").write_text(f"# Policy\n\n## Window\n\nReturns within {days} days.\n")
    summary = ingestor.ingest([docs / "old", docs / "new"])
    assert summary.files == 2 and not summary.errors
    assert [d["source"] for d in catalog.documents()] == ["policy.md"]
    texts = store.collection.get(include=["documents"])["documents"]
    assert len(texts) == 1 and "45 days" in texts[0]


def test_a_failed_ingest_leaves_the_previous_version_whole(kb, monkeypatch):
    store, catalog, ingestor, retriever, docs = kb
    path = docs / "policy.md"
    path.write_text("# Policy\n\n## Window\n\nReturns are accepted within 30 days.\n")
    ingestor.ingest([path])
    path.write_text("# Policy\n\n## Window\n\nReturns are accepted within 45 days.\n")

    def crash(*args, **kwargs):  # the process dies between writing vectors and committing
        raise KeyboardInterrupt

    monkeypatch.setattr(catalog, "commit", crash)
    with pytest.raises(KeyboardInterrupt):
        ingestor.ingest_file(path)
    monkeypatch.undo()
    texts = store.collection.get(include=["documents"])["documents"]
    assert len(texts) == 1 and "30 days" in texts[0]
    assert catalog.pending() == []
    assert ingestor.ingest([path]).chunks_added == 1
    assert "45 days" in retriever.search("return window", 1)[0].text and store.count() == 1


def test_chunks_of_an_interrupted_ingest_are_invisible_then_cleaned(kb):
    """A kill leaves vectors the catalog never committed: search ignores them, the next ingest removes them."""
    from retrieval.chunking import chunk_document

    store, catalog, ingestor, retriever, docs = kb
    path = docs / "ghost.md"
    path.write_text("# Ghost\n\n## Haunting\n\nThe warehouse ghost answers questions about lanterns.\n")
    chunks = chunk_document(load_file(path, MB), 900, 100)
    catalog.begin([Pending("ghost.md", [c.chunk_id for c in chunks], [])])
    store.add(chunks, ingestor.embedder.embed([c.text for c in chunks]))  # ...and then the process was killed
    assert store.count() == 1 and retriever.search("warehouse ghost lanterns", 3) == []
    ingestor.ingest([])  # any later ingest recovers first
    assert store.count() == 0 and catalog.pending() == []


def test_a_crash_after_commit_is_finished_by_the_next_ingest(kb):
    """Killed after the new version went live but before its old chunks were deleted: search
    sees only the new version, and recovery deletes the old chunks no document uses."""
    store, catalog, ingestor, retriever, docs = kb
    path = docs / "lamps.md"
    path.write_text("# Lamps\n\n## Bulbs\n\nThe brass lamp takes an E27 bulb of up to 40 watts.\n")
    ingestor.ingest([path])
    old_ids = catalog.chunk_ids("lamps.md")
    path.write_text("# Lamps\n\n## Bulbs\n\nThe brass lamp now takes a GU10 bulb of up to 35 watts.\n")
    planned = ingestor._plan(path)
    new = [c for c in planned.chunks if c.chunk_id not in old_ids]
    pending = catalog.begin([Pending("lamps.md", [c.chunk_id for c in new], sorted(old_ids))])
    store.add(new, ingestor.embedder.embed([c.text for c in new]))
    catalog.commit([(pending[0], planned.document, planned.new_ids)])
    # ...and here the process was killed: the old chunk is still in Chroma.
    assert store.existing(sorted(old_ids)) == old_ids
    assert [h.chunk_id for h in retriever.search("brass lamp bulb", 3)] == sorted(planned.new_ids)
    ingestor.ingest([])  # any later ingest recovers first
    assert store.existing(sorted(old_ids)) == set() and catalog.pending() == []
    assert catalog.chunk_ids("lamps.md") == planned.new_ids and store.count() == len(planned.new_ids)


@pytest.mark.parametrize(
    "name, content",
    [
        ("faq.csv", "Question,Answer\nDo you ship to Mars?,No: Earth addresses only.\nCan I pay in cash?,Only in showrooms.\n"),
        ("faq.json", '[{"question": "Do you ship to Mars?", "answer": "No: Earth addresses only."},'
                     ' {"question": "Can I pay in cash?", "answer": "Only in showrooms."}]'),
        ("faq.jsonl", '{"question": "Do you ship to Mars?", "answer": "No: Earth addresses only."}\n'
                      '{"question": "Can I pay in cash?", "answer": "Only in showrooms."}\n'),
    ],
)
def test_faq_files_make_one_chunk_per_pair(kb, name, content):
    store, catalog, ingestor, retriever, docs = kb
    (docs / name).write_text(content)
    summary = ingestor.ingest([docs / name])
    assert summary.files == 1 and summary.chunks_added == 2
    hit = retriever.search("ship to mars", 1)[0]
    assert hit.source == name and "Q: Do you ship to Mars?" in hit.text and "Earth addresses only" in hit.text


@pytest.mark.parametrize(
    "name, content, error",
    [("bad.csv", "title,body\nx,y\n", "no question/answer pairs"), ("bad.json", "{nope", "not a valid FAQ"),
     ("bad.jsonl", '"just a string"\n', "list of objects")],
)
def test_bad_faq_files_get_clear_errors(tmp_path, name, content, error):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(BadInput, match=error):
        load_file(path, MB)


def test_metadata_filters_narrow_every_mode(services):
    for mode in ("vector", "bm25", "hybrid", "hybrid+rerank"):
        hits = services.retriever.search("warranty claim steps", 5, mode, where={"doc_type": "pdf"})
        assert hits and {h.source for h in hits} == {"appliance-warranty-claims-guide.pdf"}
    only = services.retriever.search("refund", 3, "hybrid", where={"source": "returns-policy.md"})
    assert only and {h.source for h in only} == {"returns-policy.md"}


@pytest.mark.parametrize("mode", ["vector", "bm25", "hybrid", "hybrid+rerank"])
def test_search_finds_the_right_article_in_every_mode(services, mode):
    hits = services.retriever.search("How long does a refund to my credit card take?", 5, mode)
    assert len(hits) == 5 and len({h.chunk_id for h in hits}) == 5
    assert hits[0].source == "refunds-timing-and-methods.md"
    assert all(-1.0 <= h.score <= 1.0 for h in hits)
    if mode == "vector":
        assert hits == sorted(hits, key=lambda h: -h.score)


def test_hybrid_ranks_an_exact_rare_term_first(services):
    """A rare exact term ("Klarna") is where keyword scores help."""
    query = "Klarna"
    hybrid = [h.source for h in services.retriever.search(query, 3, "hybrid")]
    assert hybrid[0] == "billing-and-payment-methods.md"


def test_bm25_with_no_matching_terms_returns_nothing(services):
    assert services.retriever.search("xyzzyplugh", 5, "bm25") == []
    assert services.retriever.search("   ", 5, "hybrid") == []


def test_docx_headings_become_the_heading_path(tmp_path):
    import docx

    document = docx.Document()
    document.add_heading("Care guide", level=1)
    document.add_heading("Cast iron", level=2)
    document.add_paragraph("Dry the pan and oil it lightly after every wash.")
    path = tmp_path / "care.docx"
    document.save(str(path))
    chunks = chunk_document(load_file(path, MB), 900, 100)
    assert len(chunks) == 1
    assert chunks[0].title == "Care guide" and chunks[0].heading == "Cast iron"
    assert "oil it lightly" in chunks[0].text


def test_docx_tables_are_read_in_document_order(tmp_path):
    import docx

    document = docx.Document()
    document.add_heading("Delivery costs", level=1)
    document.add_paragraph("Prices by service:")
    table = document.add_table(rows=2, cols=2)
    for (i, j), text in {(0, 0): "Service", (0, 1): "Price", (1, 0): "Next day", (1, 1): "7.99"}.items():
        table.cell(i, j).text = text
    document.add_paragraph("Prices include VAT.")
    path = tmp_path / "costs.docx"
    document.save(str(path))
    text = load_file(path, MB).blocks[0][1]
    assert text.index("Prices by service") < text.index("Next day | 7.99") < text.index("include VAT")


def test_encrypted_pdf_is_refused(tmp_path):
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(str(SAMPLE_KB / "appliance-warranty-claims-guide.pdf")).pages[:1]:
        writer.add_page(page)
    writer.encrypt("secret")
    path = tmp_path / "locked.pdf"
    with path.open("wb") as fh:
        writer.write(fh)
    with pytest.raises(BadInput, match="encrypted"):
        load_file(path, MB)


def test_reranker_prefers_the_chunk_with_the_answering_sentence(services):
    from retrieval.rerank import SentenceReranker, sentences
    from retrieval.store import Hit

    assert sentences("Title > H\n\nFirst sentence is here. Second one is there!\n- a list item here") == [
        "First sentence is here.", "Second one is there!", "a list item here"]
    query = "How long does the warranty last on kettles?"
    vague = Hit("a", "a.md", "Kettles\n\nOur kettles come in six colours. They boil fast. Warranty terms vary.", 0.60)
    exact = Hit("b", "b.md", "Appliances\n\nKettles carry a two-year warranty. Toasters carry one year.", 0.58)
    reranked = SentenceReranker(services.embedder, weight=1.0).rerank(query, [vague, exact])
    assert [h.chunk_id for h in reranked] == ["b", "a"]


def test_int8_embeddings_are_quantized_and_rank_like_fp32(services):
    import torch

    from core.embeddings import Embedder

    int8 = Embedder(precision="int8")
    linear = [m for m in int8.model.modules() if type(m).__name__ == "Linear"]
    assert linear and all(type(m).__module__.startswith("torch.ao.nn.quantized") for m in linear)
    assert not any(isinstance(m, torch.nn.Linear) and type(m) is torch.nn.Linear for m in int8.model.modules())
    texts = ["How long do refunds take to reach my card?", "Refunds reach your card within 5 business days.",
             "Standard shipping costs 4.95 and takes three days."]
    fp, q = np.asarray(services.embedder.embed(texts)), np.asarray(int8.embed(texts))
    assert (np.sum(fp * q, axis=1) > 0.9).all()  # close to the full-precision vectors
    assert q[0] @ q[1] > q[0] @ q[2]  # and the refund answer still ranks first


def test_bench_retrieval_compares_precisions_on_the_same_corpus(services):
    from assistant.bench import bench_retrieval

    reports = list(bench_retrieval(services.settings, [30], queries=3, chunk_chars=200, precisions=["fp32", "int8"]))
    assert [r["precision"] for r in reports] == ["fp32", "int8"]
    for r in reports:
        assert r["chunks"] == 30 and 0 < r["ingest_chunks_per_s"] < r["embed_only_chunks_per_s"]
        assert 0 < r["vector_p50_ms"] <= r["vector_p95_ms"] and 0 < r["hybrid_p50_ms"] <= r["hybrid_p95_ms"]


def test_live_chunk_lookup_uses_the_key_not_a_collection_scan(tmp_path):
    from sqlalchemy import text

    from retrieval.catalog import LIVE_SQL

    engine = open_database(f"sqlite:///{tmp_path / 'kb.db'}")  # migrated schema, real indexes
    sql = LIVE_SQL.replace(":ids", "('a', 'b')").replace(":c", "'kb'")
    with engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
    assert "chunk_id=?" in plan and "ix_document_chunks_source" not in plan, plan


def _notes(docs: Path, count: int, version: int = 1) -> None:
    for i in range(count):
        (docs / f"note-{i:02d}.md").write_text(
            f"# Note {i}\n\n## Part\n\nLantern model {i} (revision {version}) takes {i + 2} batteries.\n")


def test_a_large_ingest_embeds_in_the_pool_and_survives_a_process_dying(kb, caplog):
    """Two real child processes: both take batches (small ones first, the last batch in
    pieces), the vectors they store are the in-process model's, and when one is killed
    mid-ingest its batch is embedded in-process and the other goes on, so no file is lost."""
    store, catalog, ingestor, retriever, docs = kb
    pool = EmbeddingPool(2, precision=ingestor.embedder.precision, threads_each=1)
    ingestor = dataclasses.replace(ingestor, batch_chunks=4, smallest_batch=1, pool=pool)
    ingestor.warm_up()
    assert len(pool.ready()) == 2
    sent: list[tuple[int, int]] = []  # (process, texts) in order
    for i, process in enumerate(pool.processes):
        def counting(texts, i=i, send=process.send):
            sent.append((i, len(texts)))
            return send(texts)
        process.send = counting  # type: ignore[method-assign]
    _notes(docs, 14)
    summary = ingestor.ingest([docs])
    assert summary.files == 14 and summary.chunks_added == 14 and not summary.errors
    # Doubling from one chunk up to batch_chunks, then the last batch one file at a time.
    assert [n for _, n in sent] == [1, 2, 4, 4, 1, 1, 1]
    assert {i for i, _ in sent} == {0, 1}, "the batches were shared between the processes"
    got = store.collection.get(include=["documents", "embeddings"])
    expected = np.asarray(ingestor.embedder.embed(got["documents"]))
    assert np.allclose(np.asarray(got["embeddings"]), expected, atol=1e-5)

    pool.processes[0]._process.kill()  # one child dies: its batch is embedded here
    sent.clear()
    _notes(docs, 14, version=2)
    with caplog.at_level(logging.WARNING, logger="retrieval.embed_process"):
        summary = ingestor.ingest([docs])
    assert summary.files == 14 and summary.chunks_added == 14 and not summary.errors
    assert "embedding process died" in caplog.text
    assert not pool.processes[0].ready() and pool.processes[1].ready()
    assert len(catalog.documents()) == 14 and catalog.pending() == [] and store.count() == 14
    assert "revision 2" in retriever.search("lantern model 7 batteries", 1)[0].text
    sent.clear()  # from now on the survivor takes every batch
    _notes(docs, 14, version=3)
    assert ingestor.ingest([docs]).chunks_added == 14
    assert {i for i, _ in sent} == {1} and sum(n for _, n in sent) == 14
    pool.close()


def test_a_pool_that_cannot_start_leaves_the_ingest_in_process(kb, tmp_path, caplog):
    store, catalog, ingestor, _, docs = kb
    pool = EmbeddingPool(2, model_path=str(tmp_path / "no-model"))
    ingestor = dataclasses.replace(ingestor, batch_chunks=2, pool=pool)
    with caplog.at_level(logging.WARNING, logger="retrieval.embed_process"):
        ingestor.warm_up()
        _notes(docs, 6)
        summary = ingestor.ingest([docs])
    assert not pool.ready() and "could not start" in caplog.text
    assert summary.files == 6 and store.count() == 6 and catalog.pending() == []


def test_the_default_pool_is_single_thread_processes_on_a_cpu_and_one_on_a_gpu(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    cpu = pool_for("cpu", "int8")
    assert len(cpu.processes) == 4 and {p._args[3] for p in cpu.processes} == {2}
    assert len(pool_for("cpu", "int8", workers=8).processes) == 8
    assert len(pool_for("cuda", "fp32").processes) == 1


def test_a_collection_keeps_its_precision_until_reembedded(tmp_path, services):
    from core.errors import ConfigError
    from retrieval.chunking import Chunk
    from core.embeddings import get_embedder

    int8, fp32 = get_embedder("cpu", "int8"), services.embedder
    chunk = Chunk("c1", "a.md", "A", "A > Part", None, 0, "Lanterns take four batteries.", "md")
    store = VectorStore(make_client(tmp_path / "chroma"), "prec-kb", "int8")
    store.add([chunk], int8.embed([chunk.text]))
    assert VectorStore(make_client(tmp_path / "chroma"), "prec-kb", "int8").precision() == "int8"
    with pytest.raises(ConfigError, match="holds int8 vectors.*docs reembed --collection prec-kb"):
        VectorStore(make_client(tmp_path / "chroma"), "prec-kb", "fp32")

    unchecked = VectorStore(make_client(tmp_path / "chroma"), "prec-kb")
    assert unchecked.reembed(fp32) == 1 and unchecked.precision() == "fp32"
    reopened = VectorStore(make_client(tmp_path / "chroma"), "prec-kb", "fp32")
    [stored] = reopened.collection.get(include=["embeddings"])["embeddings"]
    assert np.allclose(stored, fp32.embed([chunk.text])[0], atol=1e-6)

    legacy = VectorStore(make_client(tmp_path / "chroma"), "legacy-kb")  # written before precision was recorded
    legacy.add([chunk], fp32.embed([chunk.text]))
    assert legacy.precision() == "fp32"
    with pytest.raises(ConfigError):
        VectorStore(make_client(tmp_path / "chroma"), "legacy-kb", "int8")
