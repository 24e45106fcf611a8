"""Turn a file into Markdown-like text: headings as `#` lines, pages marked.

Each loader returns a list of (page, text) blocks; page is None where the
format has no pages. Errors are `BadInput` with a message for people.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from core.errors import BadInput

TEXT_SUFFIXES = {".md", ".markdown", ".txt"}
HTML_SUFFIXES = {".html", ".htm"}
FAQ_SUFFIXES = {".csv", ".json", ".jsonl"}
SUPPORTED = TEXT_SUFFIXES | HTML_SUFFIXES | FAQ_SUFFIXES | {".pdf", ".docx"}
QUESTION_KEYS = ("question", "q", "title")
ANSWER_KEYS = ("answer", "a", "response")
# Page furniture that is never content.
HTML_BOILERPLATE = ["script", "style", "noscript", "nav", "footer", "header", "aside", "form", "iframe", "svg", "button"]


@dataclass(frozen=True)
class LoadedDocument:
    source: str  # file name: what citations and evaluation refer to
    title: str
    blocks: list[tuple[int | None, str]]
    doc_type: str = "md"
    faq: list[tuple[str, str]] = field(default_factory=list)  # FAQ files: (question, answer) pairs


# Only these characters can be control or format ones: printable ASCII is skipped in C,
# where looking up every character's category took as long as the rest of the cleaning.
_NOT_PLAIN_ASCII = re.compile(r"[^\x20-\x7e\n\t]")


def _drop_control(match: re.Match) -> str:
    return "" if unicodedata.category(match.group())[0] == "C" else match.group()


def clean_text(text: str) -> str:
    """Unicode NFKC, no control or zero-width characters, tidy whitespace, keep paragraphs."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _NOT_PLAIN_ASCII.sub(_drop_control, text)
    lines = [" ".join(line.split()) for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise BadInput("binary data in a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput(f"not UTF-8 text (byte {exc.start})") from None


def _load_html(path: Path) -> list[tuple[int | None, str]]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_read_text(path), "html.parser")
    for tag in soup(HTML_BOILERPLATE):
        tag.decompose()
    for tag in soup.select('[class*="cookie"], [id*="cookie"], [class*="banner"]'):
        tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    lines = []
    for el in root.find_all(["h1", "h2", "h3", "h4", "p", "li", "td", "dt", "dd", "pre"]):
        text = " ".join(el.get_text(" ").split())
        if not text or el.find_parent(["li", "td", "dd"]) is not None and el.name == "p":
            continue
        if el.name[0] == "h":
            lines.append("\n" + "#" * int(el.name[1]) + " " + text)
        elif el.name == "li":
            lines.append("- " + text)
        else:
            lines.append("\n" + text)
    if not lines:
        lines = [root.get_text("\n")]
    title = soup.title.get_text().strip() if soup.title else ""
    body = "\n".join(lines)
    if title and not body.lstrip().startswith("#"):
        body = f"# {title}\n{body}"
    return [(None, body)]


def _load_pdf(path: Path) -> list[tuple[int | None, str]]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            raise BadInput("the PDF is encrypted")
        return [(i + 1, page.extract_text() or "") for i, page in enumerate(reader.pages)]
    except BadInput:
        raise
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise BadInput(f"not a readable PDF: {exc}") from None


def _load_docx(path: Path) -> list[tuple[int | None, str]]:
    import zipfile

    import docx
    from docx.opc.exceptions import OpcError
    from docx.table import Table

    try:
        document = docx.Document(str(path))
    except (zipfile.BadZipFile, KeyError, ValueError, OpcError) as exc:
        raise BadInput(f"not a readable Word document: {exc}") from None
    lines = []
    for block in document.iter_inner_content():  # paragraphs and tables in document order
        if isinstance(block, Table):
            lines.extend(" | ".join(cell.text.strip() for cell in row.cells) for row in block.rows)
            continue
        style = (block.style.name or "").lower() if block.style is not None else ""
        if style.startswith("heading") and style[-1:].isdigit():
            lines.append("#" * int(style[-1]) + " " + block.text)
        elif style == "title":
            lines.append("# " + block.text)
        else:
            lines.append(block.text)
    return [(None, "\n".join(lines))]


def _pick(row: dict, keys: tuple[str, ...]) -> str:
    lowered = {str(k).strip().lower(): v for k, v in row.items()}
    for key in keys:
        value = lowered.get(key)
        if isinstance(value, str) and value.strip():
            return clean_text(value)
    return ""


def _load_faq(path: Path) -> list[tuple[str, str]]:
    """CSV with question/answer columns, a JSON list of {question, answer}, or JSONL of them."""
    import csv
    import io
    import json

    raw = _read_text(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            reader = csv.DictReader(io.StringIO(raw))
            rows = list(reader)
        elif suffix == ".json":
            data = json.loads(raw)
            rows = data.get("faqs", data.get("items")) if isinstance(data, dict) else data
        else:
            rows = [json.loads(line) for line in raw.splitlines() if line.strip()]
    except (json.JSONDecodeError, csv.Error) as exc:
        raise BadInput(f"not a valid FAQ file: {exc}") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise BadInput("an FAQ file holds a list of objects with 'question' and 'answer'")
    pairs = [(_pick(r, QUESTION_KEYS), _pick(r, ANSWER_KEYS)) for r in rows]
    pairs = [(q, a) for q, a in pairs if q and a]
    if not pairs:
        raise BadInput("no question/answer pairs found (expected 'question' and 'answer' fields)")
    return pairs


Blocks = list[tuple[int | None, str]]
# The loaders of the formats that have structure; text and FAQ files are read directly.
FORMATS: dict[str, Callable[[Path], Blocks]] = {
    ".html": _load_html, ".htm": _load_html, ".pdf": _load_pdf, ".docx": _load_docx}


def load_file(path: Path, max_bytes: int, formats: dict[str, Callable[[Path], Blocks]] = FORMATS) -> LoadedDocument:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise BadInput(f"unsupported file type {suffix or '(none)'}; supported: {', '.join(sorted(SUPPORTED))}")
    size = path.stat().st_size
    if size == 0:
        raise BadInput("the file is empty")
    if size > max_bytes:
        raise BadInput(f"the file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit")
    doc_type = {".markdown": "md", ".htm": "html"}.get(suffix, suffix.lstrip("."))
    if suffix in FAQ_SUFFIXES:
        title = path.stem.replace("-", " ").replace("_", " ").strip().capitalize()
        return LoadedDocument(path.name, title, [], "faq", _load_faq(path))
    blocks = [(None, _read_text(path))] if suffix in TEXT_SUFFIXES else formats[suffix](path)
    blocks = [(page, clean_text(text)) for page, text in blocks]
    blocks = [(page, text) for page, text in blocks if text]
    if not blocks:
        raise BadInput("no text could be extracted")
    return LoadedDocument(path.name, _title(blocks[0][1], path), blocks, doc_type)


def _title(text: str, path: Path) -> str:
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem.replace("-", " ").replace("_", " ").strip().capitalize()
