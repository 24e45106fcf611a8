"""LangChain's document loaders for the formats the knowledge base reads, in the
shape of `retrieval.loaders.FORMATS`: a file in, (page, text) blocks out.

They are measured against the hand-written loaders by
`helpdesk eval retrieval --loaders both`; the README says which ships and why.
`langchain-community`, where these loaders live, is imported only here.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

from core.errors import BadInput

Blocks = list[tuple[int | None, str]]


def community_loaders():
    with warnings.catch_warnings():
        # The package announces its own sunset on import; the measurement still wants it.
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_community import document_loaders
    return document_loaders


def load_html(path: Path) -> Blocks:
    try:
        docs = community_loaders().BSHTMLLoader(str(path), open_encoding="utf-8").load()
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"not readable HTML: {exc}") from None
    return [(None, d.page_content) for d in docs]


def load_pdf(path: Path) -> Blocks:
    from pypdf.errors import PdfReadError

    try:
        docs = community_loaders().PyPDFLoader(str(path), mode="page").load()
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise BadInput(f"not a readable PDF: {exc}") from None
    return [(int(d.metadata.get("page", 0)) + 1, d.page_content) for d in docs]


def load_docx(path: Path) -> Blocks:
    import zipfile

    try:
        docs = community_loaders().Docx2txtLoader(str(path)).load()
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise BadInput(f"not a readable Word document: {exc}") from None
    return [(None, d.page_content) for d in docs]


FORMATS: dict[str, Callable[[Path], Blocks]] = {
    ".html": load_html, ".htm": load_html, ".pdf": load_pdf, ".docx": load_docx}
