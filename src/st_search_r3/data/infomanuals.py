"""GNU info manuals: the query is a section's title, the document the section's text.

Source: the info manuals that Debian 12 ships in packages of its main archive (coreutils, findutils, grep,
sed, diffutils, gzip, ...; :data:`PACKAGES`). The packages are fetched with ``apt-get download`` into
``<st-search-r3 home>/sources/infomanuals`` and unpacked with ``dpkg-deb``, as for the man pages; each
manual is under its own license (GNU FDL or GPL), named in the manual.

An info file is a sequence of nodes separated by ``\\x1f``; a node has a header line
(``File: ..., Node: ..., Up: ...``), a title underlined with ``*``, ``=``, ``-`` or ``.``, and its text.
The query is the title without its section number (``"16.3.1 File type tests"`` -> ``"File type
tests"``); the document is the text with the node's menu dropped. Titles that occur in more than one node
("Overview", "GNU Free Documentation License") are ambiguous and dropped, as are index nodes, titles of a
single word, and sections of fewer than ten words. Splits are by node.
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from st_search_r3.data.debian_archive import unpacked_packages
from st_search_r3.data.retrieval_split import SPLITS, RetrievalSplit, assign_split

PACKAGES = (
    "bc",
    "coreutils",
    "diffutils",
    "ed",
    "findutils",
    "gettext",
    "gnupg",
    "grep",
    "gzip",
    "readline-common",
    "sed",
    "time",
    "wget",
)
MAX_DOCUMENT_CHARS = 4000
_UNDERLINE = re.compile(r"^[*=\-.]{3,}$")
_SECTION_NUMBER = re.compile(r"^(\d+(\.\d+)*|[A-Z](\.\d+)*|Appendix [A-Z](\.\d+)*)\s+")


def manual_text(info: Path, manual: str) -> str:
    """The whole text of one manual, its parts (``find.info-1.gz``, ``find.info-2.gz``) joined in order."""
    parts = sorted(info.glob(f"{manual}.info-*.gz"), key=lambda path: int(path.name.rsplit("-", 1)[1][:-3]))
    paths = parts or [info / f"{manual}.info.gz"]
    return "".join(gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace") for path in paths)


def parse_node(chunk: str) -> tuple[str, str, str] | None:
    """``(node name, title, text)`` of one node, or None for what is not a titled node."""
    lines = chunk.strip("\n").splitlines()
    if not lines or not lines[0].startswith("File:"):
        return None
    node = re.search(r"Node:\s*([^,]+)", lines[0])
    if node is None:
        return None
    for index in range(1, len(lines) - 1):
        if lines[index].strip() and _UNDERLINE.match(lines[index + 1].strip()):
            title = _SECTION_NUMBER.sub("", lines[index].strip())
            body = lines[index + 2 :]
            break
    else:
        return None
    if "* Menu:" in body:
        body = body[: body.index("* Menu:")]
    text = "\n\n".join(" ".join(p.split()) for p in "\n".join(body).split("\n\n") if p.strip())
    return node.group(1).strip(), title, text


def read_sections(info: Path) -> Iterator[tuple[str, str, str]]:
    """Yields ``(manual:node, title, text)`` for every titled node of every manual in ``info``."""
    manuals = sorted({path.name.split(".info")[0] for path in info.glob("*.info*.gz")})
    for manual in manuals:
        for chunk in manual_text(info, manual).split("\x1f"):
            parsed = parse_node(chunk)
            if parsed is not None:
                node, title, text = parsed
                yield f"{manual}:{node}", title, text[:MAX_DOCUMENT_CHARS]


def build(
    folder: str | Path | None = None, seed: int = 0, dev_fraction: float = 0.1, test_fraction: float = 0.15
) -> dict[str, RetrievalSplit]:
    """Builds the train / dev / test splits (``{split name: RetrievalSplit}``).

    Args:
        folder: Where the packages are downloaded and unpacked; default ``<home>/sources/infomanuals``.
    """
    from st_search_r3.base_model import home_dir

    folder = Path(folder) if folder else home_dir() / "sources" / "infomanuals"
    info = unpacked_packages(folder, PACKAGES) / "usr" / "share" / "info"
    sections = list(read_sections(info))
    uses = Counter(tuple(title.lower().split()) for _, title, _ in sections)
    splits = {name: RetrievalSplit() for name in SPLITS}
    for node, title, text in sections:
        words = tuple(title.lower().split())
        if uses[words] > 1 or len(words) < 2 or "index" in words or len(text.split()) < 10:
            continue
        split = splits[assign_split(node, seed, dev_fraction, test_fraction)]
        split.add_pair(f"q-{node}", title, node, text, group=node)
    return splits
