"""Chunking: split at headings, then to a size with overlap (LangChain's text splitters).

Each chunk's text starts with its title and heading path, so a passage about
"Fees" embeds as "Returns policy > Fees" and not as a bare paragraph.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

from retrieval.loaders import LoadedDocument

HEADING_LEVELS = [("#" * n, f"h{n}") for n in range(1, 7)]


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    source: str
    title: str
    heading: str  # "Section > Subsection"
    page: int | None
    index: int
    text: str  # what is embedded and shown
    doc_type: str = "md"

    def metadata(self) -> dict:
        meta = {"source": self.source, "title": self.title, "heading": self.heading, "index": self.index,
                "doc_type": self.doc_type}
        if self.page is not None:
            meta["page"] = self.page
        return meta


def _faq_chunks(doc: LoadedDocument) -> list[Chunk]:
    """A question/answer pair is one chunk: splitting it would separate Q from A."""
    return [_make(doc, question[:200], None, i, f"{doc.title} > {question[:200]}", [f"Q: {question}\nA: {answer}"])
            for i, (question, answer) in enumerate(doc.faq)]


def chunk_document(doc: LoadedDocument, size: int, overlap: int) -> list[Chunk]:
    """LangChain's splitters cut the text: `MarkdownHeaderTextSplitter` into sections (the
    loaders write headings as `#` lines for every format), then `RecursiveCharacterTextSplitter`
    (paragraphs, lines, words) to `size` characters with `overlap`. An FAQ pair stays whole."""
    if doc.faq:
        return _faq_chunks(doc)
    sections = MarkdownHeaderTextSplitter(headers_to_split_on=HEADING_LEVELS, strip_headers=True)
    pieces = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap)
    chunks: list[Chunk] = []
    for page, text in doc.blocks:
        for section in sections.split_text(text):
            path = [section.metadata[key] for _, key in HEADING_LEVELS if key in section.metadata]
            if path and path[0] == doc.title and "h1" in section.metadata:
                path = path[1:]  # the title is already in every chunk
            heading = " > ".join(path)
            prefix = doc.title + (f" > {heading}" if heading else "")
            for piece in pieces.split_text(section.page_content):
                chunks.append(_make(doc, heading, page, len(chunks), prefix, [piece]))
    return chunks


def _make(doc: LoadedDocument, heading: str, page: int | None, index: int, prefix: str, body: list[str]) -> Chunk:
    text = prefix + "\n\n" + "\n\n".join(body)
    return Chunk(chunk_id(text), doc.source, doc.title, heading, page, index, text, doc.doc_type)


def chunk_id(text: str) -> str:
    """Content-addressed: stable across re-ingests, and identical chunks in two files are stored once."""
    return hashlib.sha256(text.encode()).hexdigest()[:24]
