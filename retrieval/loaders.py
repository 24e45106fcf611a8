"""Turn a file into Markdown-like text: headings as `#` lines, pages marked.

Each loader returns a list of (page, text) blocks; page is None where the
format has no pages. Errors are `BadInput` with a message for people.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import BadInput

TEXT_SUFFIXES = {".md", ".markdown", ".txt"}
HTML_SUFFIXES = {".html", ".htm"}
SUPPORTED = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".docx"}
# Page furniture that is never content.
HTML_BOILERPLATE = ["script", "style", "noscript", "nav", "footer", "header", "aside", "form", "iframe", "svg", "button"]


@dataclass(frozen=True)
class LoadedDocument:
    source: str  # file name: what citations and evaluation refer to
    title: str
    blocks: list[tuple[int | None, str]]


def clean_text(text: str) -> str:
    """Unicode NFKC, no control or zero-width characters, tidy whitespace, keep paragraphs."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
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

    try:
        document = docx.Document(str(path))
    except (zipfile.BadZipFile, KeyError, ValueError, OpcError) as exc:
        raise BadInput(f"not a readable Word document: {exc}") from None
    lines = []
    for para in document.paragraphs:
        style = (para.style.name or "").lower() if para.style is not None else ""
        if style.startswith("heading") and style[-1:].isdigit():
            lines.append("#" * int(style[-1]) + " " + para.text)
        elif style == "title":
            lines.append("# " + para.text)
        else:
            lines.append(para.text)
    return [(None, "\n".join(lines))]


def load_file(path: Path, max_bytes: int) -> LoadedDocument:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise BadInput(f"unsupported file type {suffix or '(none)'}; supported: {', '.join(sorted(SUPPORTED))}")
    size = path.stat().st_size
    if size == 0:
        raise BadInput("the file is empty")
    if size > max_bytes:
        raise BadInput(f"the file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit")
    if suffix in TEXT_SUFFIXES:
        blocks: list[tuple[int | None, str]] = [(None, _read_text(path))]
    elif suffix in HTML_SUFFIXES:
        blocks = _load_html(path)
    elif suffix == ".pdf":
        blocks = _load_pdf(path)
    else:
        blocks = _load_docx(path)
    blocks = [(page, clean_text(text)) for page, text in blocks]
    blocks = [(page, text) for page, text in blocks if text]
    if not blocks:
        raise BadInput("no text could be extracted")
    return LoadedDocument(path.name, _title(blocks[0][1], path), blocks)


def _title(text: str, path: Path) -> str:
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem.replace("-", " ").replace("_", " ").strip().capitalize()
