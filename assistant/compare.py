"""`helpdesk eval retrieval --loaders both`: the hand-written loaders and LangChain's side by side.

The sample articles are written again as web pages and Word documents; each set of
loaders reads them, one format at a time, into throw-away data directories (same
settings otherwise, the same chunker, redaction and embedder), then answers the same
labelled questions: the sample questions and the answerable held-out questions.
"""
from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator

from assistant.app import SAMPLE_KB, Services
from assistant.evaluate import SPLITS
from core.settings import Settings
from core.jsonl import read_jsonl
from retrieval.evaluate import SAMPLE_QUESTIONS, evaluate, load_questions


def question_sets() -> dict[str, list[dict]]:
    heldout = [r for r in read_jsonl(SPLITS["held-out"], lambda r: isinstance(r.get("question"), str), "'question'")
               if isinstance(r.get("source"), str)]
    return {"sample_questions": load_questions(SAMPLE_QUESTIONS), "held-out": heldout}


def _fresh(settings: Settings, home: str) -> Services:
    data = settings.model_dump(mode="json")
    data.update(home=home, database_url=None)
    data["retrieval"] |= {"chroma_host": None}
    # The trained guardrail heads do not depend on the loaders: reuse them, do not retrain.
    data["guardrails"]["classifier_cache"] = str(settings.classifier_dir)
    services = Services(Settings.model_validate(data))
    services.guard, services.kb_embedder  # noqa: B018  loaded before the clock starts
    return services


def render_formats(source: Path, out: Path) -> dict[str, list[Path]]:
    """The sample knowledge base's Markdown articles written again as help-centre web pages
    (navigation, cookie banner and footer around the article) and as Word documents (heading
    styles, list styles, tables), so each loader reads the same 24 articles in each format;
    the shipped PDF is read as it is."""
    from markdown_it import MarkdownIt

    to_html = MarkdownIt("commonmark").enable("table")
    rendered: dict[str, list[Path]] = {".html": [], ".docx": [], ".pdf": []}
    for md in sorted(source.glob("*.md")):
        text = md.read_text(encoding="utf-8")
        title = next((line[2:] for line in text.splitlines() if line.startswith("# ")), md.stem)
        page = out / f"{md.stem}.html"
        page.write_text(PAGE.format(title=title, article=to_html.render(text)), encoding="utf-8")
        rendered[".html"].append(page)
        word = out / f"{md.stem}.docx"
        _write_docx(text, word)
        rendered[".docx"].append(word)
    return rendered


def _corpus(rendered: dict[str, list[Path]], suffix: str) -> list[Path]:
    """The articles in one format, beside the sample files that were not rendered (the PDF and the
    web page), so each format's documents compete with the whole knowledge base as they would."""
    originals = [p for p in sorted(SAMPLE_KB.iterdir()) if p.suffix != ".md"]
    if suffix == ".pdf":  # the shipped PDF in the sample knowledge base as it ships
        return sorted(SAMPLE_KB.iterdir())
    return rendered[suffix] + originals


PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title} | Help Centre</title>
<script>window.dataLayer = window.dataLayer || [];</script><style>body {{ font-family: sans-serif; }}</style></head>
<body><div id="cookie-banner" class="cookie-banner"><p>We use cookies to make our site work and to show you
relevant offers.</p><button>Accept all cookies</button></div>
<header><nav><a href="/">Home</a> <a href="/kitchen">Kitchen</a> <a href="/outdoor">Outdoor</a>
<a href="/help">Help Centre</a> <a href="/account">My account</a> <a href="/basket">Basket (0)</a></nav></header>
<main><article>
{article}
</article></main>
<footer><p>Sign up for our newsletter for offers and new arrivals.</p><ul><li>Delivery</li><li>Returns</li>
<li>Contact us</li><li>Careers</li></ul><p>© Example Retail Ltd. All rights reserved.</p></footer></body></html>
"""


def _write_docx(markdown: str, path: Path) -> None:
    import re

    import docx

    document = docx.Document()
    table: list[list[str]] = []

    def flush_table() -> None:
        rows = [r for r in table if not all(set(c) <= set("-: ") for c in r)]
        if rows:
            grid = document.add_table(rows=len(rows), cols=max(len(r) for r in rows))
            for i, row in enumerate(rows):
                for j, cell in enumerate(row):
                    grid.cell(i, j).text = cell
        table.clear()

    for line in markdown.splitlines():
        plain = line.replace("**", "").strip()
        if plain.startswith("|"):
            table.append([c.strip() for c in plain.strip("|").split("|")])
            continue
        flush_table()
        if not plain:
            continue
        if heading := re.match(r"(#{1,6}) (.*)", plain):
            document.add_heading(heading.group(2), level=len(heading.group(1)))
        elif plain.startswith(("- ", "* ")):
            document.add_paragraph(plain[2:], style="List Bullet")
        elif numbered := re.match(r"\d+\. (.*)", plain):
            document.add_paragraph(numbered.group(1), style="List Number")
        else:
            document.add_paragraph(plain)
    flush_table()
    document.save(str(path))


def compare_loaders(settings: Settings, names: Iterable[str], mode: str | None = None,
                    rounds: int = 3) -> Iterator[dict]:
    """Each set of loaders reads the rendered knowledge base, one format at a time, into a fresh
    index; then the sample and held-out questions whose article is in that format. Ingestion time
    is the median of `rounds` fresh ingests, the loader sets taking turns (A, B, A, B, ...)."""
    from retrieval.loaders import FORMATS
    from retrieval.loaders_langchain import FORMATS as LANGCHAIN_FORMATS
    from retrieval.loaders_langchain import community_loaders

    loaders = {"helpdesk": FORMATS, "langchain": LANGCHAIN_FORMATS}
    names = list(names)
    sets = question_sets()
    community_loaders()  # imported before any clock starts, as in a running server
    with tempfile.TemporaryDirectory(prefix="helpdesk-loaders-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        files = render_formats(SAMPLE_KB, corpus)
        for suffix in files:
            paths = _corpus(files, suffix)
            stems = {p.stem for p in paths if p.suffix == suffix}
            times: dict[str, list[float]] = {n: [] for n in names}
            kept: dict[str, Services] = {}
            for r in range(rounds):
                for name in names:
                    services = _fresh(settings, f"{tmp}/{name}{suffix}-{r}")
                    ingestor = dataclasses.replace(services.ingestor, formats=loaders[name])
                    started = time.perf_counter()
                    ingestor.ingest(paths)
                    times[name].append(time.perf_counter() - started)
                    if name in kept:
                        services.engine.dispose()
                    else:
                        kept[name] = services
            for name in names:
                services = kept[name]
                chunks = list(services.vectors.chunks())
                headed = sum(1 for c in chunks if c.heading) / len(chunks) if chunks else 0.0
                for label, questions in sets.items():
                    mine = [q | {"source": Path(q["source"]).stem + suffix} for q in questions
                            if Path(q["source"]).stem in stems]
                    report = evaluate(lambda q, k: services.retriever.search(q, k, mode), mine)
                    yield {"loaders": name, "format": suffix.lstrip("."), "questions": label,
                           **{k: v for k, v in report.items() if k != "questions"}, "items": report["questions"],
                           "chunks": len(chunks), "headed_share": round(headed, 3),
                           "mean_chunk_chars": round(statistics.fmean(len(c.text) for c in chunks)) if chunks else None,
                           "ingest_s": round(statistics.median(times[name]), 2)}
                services.engine.dispose()
