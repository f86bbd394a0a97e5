"""Linux man pages: the query is a page's one-line NAME summary, the document its DESCRIPTION section.

Source: the Linux man-pages project as Debian 12 ships it, packages ``manpages`` and ``manpages-dev``
(system calls, library functions, devices, file formats, overviews, administration). The packages are
fetched with ``apt-get download`` (the Debian archive, like the ``debian`` source's index) into
``<st-search-r3 home>/sources/manpages`` and unpacked with ``dpkg-deb``; each page is under its own
license, mostly GPL-2.0-or-later or the man-pages "verbatim" license, named in its header.

The roff source is turned into plain text here (fonts, escapes and layout macros dropped; tables and
examples kept as text). Pages that only point to another page (``.so``) are skipped; pages with the same
summary (one family documented twice) keep one page, the one with the shortest name, and splits are by
page, so no near-duplicate crosses splits. The query is the summary alone, without the function names.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

from st_search_r3.data.debian_archive import unpacked_packages
from st_search_r3.data.retrieval_split import SPLITS, RetrievalSplit, assign_split

PACKAGES = ("manpages", "manpages-dev")
MAX_DOCUMENT_CHARS = 4000

_ESCAPES = {
    r"\-": "-",
    r"\(aq": "'",
    r"\(dq": '"',
    r"\(lq": '"',
    r"\(rq": '"',
    r"\(oq": "'",
    r"\(cq": "'",
    r"\(em": "--",
    r"\(en": "-",
    r"\(bu": "*",
    r"\(ti": "~",
    r"\(ha": "^",
    r"\(rs": "\\",
    r"\e": "\\",
    r"\ ": " ",
    r"\~": " ",
}
_DROPPED_ESCAPES = re.compile(r"\\f(\[[^\]]*\]|\(..|.)|\\s[-+]?\d|\\[&%c|^:/,]|\\\*\(..|\\\*.|\\\(..|\\\[[^\]]*\]")
_FONT_MACROS = {"B", "I", "SM", "SB"}  # arguments joined by spaces
_ALTERNATING_MACROS = {"BR", "RB", "IR", "RI", "BI", "IB"}  # arguments joined without spaces
_TEXT_MACROS = {"SS", "IP", "TP", "UR", "MT", "TQ"}  # keep the argument as a line of text


def roff_to_text(lines: list[str]) -> str:
    """Plain text of roff lines: paragraphs separated by blank lines, words joined by single spaces."""
    paragraphs, words = [], []
    for line in lines:
        if line.startswith((".", "'")):
            macro, _, argument = line[1:].strip().partition(" ")
            if macro in _FONT_MACROS:
                words.append(_text(" ".join(_arguments(argument))))
            elif macro in _ALTERNATING_MACROS:
                words.append(_text("".join(_arguments(argument))))
            elif macro in _TEXT_MACROS and argument:
                _flush(paragraphs, words)
                words.append(_text(" ".join(_arguments(argument))))
            elif macro in {"PP", "P", "LP", "TP", "IP", "HP", "SS", "sp", "br", "TQ", "EX", "EE", "nf", "fi"}:
                _flush(paragraphs, words)
            continue
        words.append(_text(line))
    _flush(paragraphs, words)
    return "\n\n".join(paragraphs)


def _flush(paragraphs: list[str], words: list[str]) -> None:
    text = " ".join(" ".join(words).split())
    if text:
        paragraphs.append(text)
    words.clear()


def _arguments(argument: str) -> list[str]:
    return [quoted if quoted else bare for quoted, bare in re.findall(r'"([^"]*)"|(\S+)', argument)]


def _text(line: str) -> str:
    for escape, replacement in _ESCAPES.items():
        line = line.replace(escape, replacement)
    return _DROPPED_ESCAPES.sub("", line)


def sections(source: str) -> dict[str, list[str]]:
    """Lines of each ``.SH`` section of a page's roff source, comments dropped."""
    found, current = {}, None
    for line in source.splitlines():
        if line.startswith(('.\\"', "'\\\"", ".\\}")) or line.strip() in {".", "'"}:
            continue
        if line.startswith(".SH"):
            current = " ".join(_arguments(line[3:].strip())).upper()
            found[current] = []
        elif current is not None:
            found[current].append(line)
    return found


def read_pages(man: Path) -> Iterator[tuple[str, str, str]]:
    """Yields ``(page, summary, description)`` for every page with a NAME summary and a DESCRIPTION."""
    for path in sorted(man.glob("man[1-9]/*.gz")):
        if path.is_symlink():  # another name of a page that is read under its own name
            continue
        source = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
        if source.lstrip().startswith(".so "):
            continue
        parts = sections(source)
        name = roff_to_text(parts.get("NAME", []))
        description = roff_to_text(parts.get("DESCRIPTION", []))
        if " - " not in name or not description:
            continue
        page = path.name.removesuffix(".gz")
        yield page, name.split(" - ", 1)[1].strip(), description[:MAX_DOCUMENT_CHARS]


def build(
    folder: str | Path | None = None, seed: int = 0, dev_fraction: float = 0.1, test_fraction: float = 0.15
) -> dict[str, RetrievalSplit]:
    """Builds the train / dev / test splits (``{split name: RetrievalSplit}``).

    Args:
        folder: Where the packages are downloaded and unpacked; default ``<home>/sources/manpages``.

    Kept: summaries of at least three words whose description has at least ten.
    """
    from st_search_r3.base_model import home_dir

    folder = Path(folder) if folder else home_dir() / "sources" / "manpages"
    man = unpacked_packages(folder, PACKAGES) / "usr" / "share" / "man"
    chosen: dict[str, tuple[str, str, str]] = {}
    for page, summary, description in read_pages(man):
        if len(summary.split()) < 3 or len(description.split()) < 10:
            continue
        group = " ".join(summary.lower().split())
        if group not in chosen or (len(page), page) < (len(chosen[group][0]), chosen[group][0]):
            chosen[group] = (page, summary, description)
    splits = {name: RetrievalSplit() for name in SPLITS}
    for page, summary, description in sorted(chosen.values()):
        split = splits[assign_split(page, seed, dev_fraction, test_fraction)]
        split.add_pair(f"q-{page}", summary, page, description, group=page)
    return splits
