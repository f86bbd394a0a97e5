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

The manuals of :data:`SUPPLEMENT_PACKAGES` (bash, m4, texinfo, cvs, R, ...) add training pairs only, so that
the dev and test tasks stay those of :data:`PACKAGES`. A supplement section is dropped when its title is
also a main section's (a dev or test query among them: ambiguity is counted over both), or when it copies
a dev or test document (:func:`copies`: shared boilerplate such as license texts).
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
# Training only. Left out: gnulib (its module docs copy coreutils' text), emacs-common, maxima-doc and
# octave-doc (10-14 MB downloads of mathematics or editor manuals).
SUPPLEMENT_PACKAGES = (
    "a2ps",
    "auctex",
    "autogen",
    "automake",
    "barcode",
    "bash-doc",
    "cvs",
    "datamash",
    "dc",
    "dejagnu",
    "direvent",
    "elpa-magit",
    "enscript",
    "flex",
    "gddrescue",
    "global",
    "gnucobol4",
    "gnuplot-doc",
    "gperf",
    "groff",
    "indent",
    "info",
    "libassuan-dev",
    "libext2fs-dev",
    "libgcrypt20-doc",
    "libgdbm-dev",
    "libidn-dev",
    "libksba-dev",
    "libtasn1-doc",
    "m4",
    "mailutils-doc",
    "mcron",
    "mit-scheme-doc",
    "mtools",
    "nano",
    "nettle-dev",
    "parted-doc",
    "pinentry-doc",
    "pspp",
    "r-doc-info",
    "ratpoison",
    "rcs",
    "recutils",
    "screen",
    "sharutils",
    "shishi-doc",
    "stow",
    "texinfo",
    "units",
    "wdiff",
    "zsh-doc",
)
MAX_DOCUMENT_CHARS = 4000
SHINGLE_WORDS = 8
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


def shingles(text: str) -> set[tuple[str, ...]]:
    """The text's runs of :data:`SHINGLE_WORDS` consecutive lower-cased words."""
    words = text.lower().split()
    return {tuple(words[i : i + SHINGLE_WORDS]) for i in range(max(1, len(words) - SHINGLE_WORDS + 1))}


def copies(text: str, held_out: set[tuple[str, ...]], share: float = 0.2) -> bool:
    """Whether more than ``share`` of the text's shingles occur in ``held_out`` (a set of :func:`shingles`)."""
    own = shingles(text)
    return len(own & held_out) > share * len(own)


def title_words(title: str) -> tuple[str, ...]:
    """The title as ambiguity is counted: lower-cased words."""
    return tuple(title.lower().split())


def usable(title: str, text: str, uses: Counter) -> bool:
    """A section makes a pair: an unambiguous title of two words or more (``uses`` counts
    :func:`title_words`), not an index, ten words of text."""
    words = title_words(title)
    return uses[words] == 1 and len(words) >= 2 and "index" not in words and len(text.split()) >= 10


def build(
    folder: str | Path | None = None,
    seed: int = 0,
    dev_fraction: float = 0.1,
    test_fraction: float = 0.15,
    supplement_folder: str | Path | None = None,
    supplement: bool = True,
) -> dict[str, RetrievalSplit]:
    """Builds the train / dev / test splits (``{split name: RetrievalSplit}``).

    Args:
        folder: Where :data:`PACKAGES` are downloaded and unpacked; default ``<home>/sources/infomanuals``.
        supplement_folder: Where :data:`SUPPLEMENT_PACKAGES` are; default ``<home>/sources/infomanuals_supplement``.
        supplement: Whether to add the supplement's training pairs.
    """
    from st_search_r3.base_model import home_dir

    folder = Path(folder) if folder else home_dir() / "sources" / "infomanuals"
    sections = list(read_sections(unpacked_packages(folder, PACKAGES) / "usr" / "share" / "info"))
    uses = Counter(title_words(title) for _, title, _ in sections)
    splits = {name: RetrievalSplit() for name in SPLITS}
    for node, title, text in sections:
        if usable(title, text, uses):
            split = splits[assign_split(node, seed, dev_fraction, test_fraction)]
            split.add_pair(f"q-{node}", title, node, text, group=node)
    if supplement:
        supplement_folder = Path(supplement_folder or home_dir() / "sources" / "infomanuals_supplement")
        info = unpacked_packages(supplement_folder, SUPPLEMENT_PACKAGES) / "usr" / "share" / "info"
        add_supplement(splits, list(read_sections(info)), sections)
    return splits


def add_supplement(
    splits: dict[str, RetrievalSplit], sections: list[tuple[str, str, str]], main_sections: list[tuple[str, str, str]]
) -> None:
    """Adds the supplement ``sections`` to ``splits["train"]``, except those that would leak into dev or
    test (see the module's docstring) and manuals that :data:`PACKAGES` already ship (``main_sections``
    are theirs)."""
    held_out = set().union(*(shingles(text) for s in ("dev", "test") for text in splits[s].corpus.values()))
    main_manuals = {node.split(":")[0] for node, _, _ in main_sections}
    sections = [section for section in sections if section[0].split(":")[0] not in main_manuals]
    uses = Counter(title_words(title) for _, title, _ in sections + main_sections)
    for node, title, text in sections:
        if usable(title, text, uses) and not copies(text, held_out):
            splits["train"].add_pair(f"q-{node}", title, node, text, group=node)
