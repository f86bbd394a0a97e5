"""Debian package search: the query is a package's one-line summary, the document its long description.

Source: the English package descriptions of Debian 12 "bookworm" main (apt's ``Translation-en`` index,
``/var/lib/apt/lists/*bookworm_main_i18n_Translation-en*``, fetched by
``apt-get update -o Acquire::Languages=en``). Each description is under its package's license.

Packages built from one source often share their first paragraph ("0ad", "0ad-data", ...); packages are
grouped by that paragraph, one package per group is kept (the shortest name) and groups are split, so no
near-duplicate crosses splits or competes as a false negative. Packages whose contents are reserved for
independent evaluation (Python's HTML docs, the Debian FAQ and Reference, FOLDOC / Jargon / GCIDE) are
left out entirely.
"""

from __future__ import annotations

import glob
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

from st_search_r3.data.retrieval_split import SPLITS, RetrievalSplit, assign_split

DEFAULT_GLOB = "/var/lib/apt/lists/*_dists_bookworm_main_i18n_Translation-en*"
INSTALL_HINT = "sudo apt-get update -o Acquire::Languages=en   (or pass the path of a Translation-en file)"
RESERVED = re.compile(
    r"^(python3(\.\d+)?-doc|debian-faq.*|debian-reference.*|dict-(foldoc|jargon|gcide)|dictd?-?gcide.*)$"
)


def default_source() -> Path:
    matches = sorted(glob.glob(DEFAULT_GLOB))
    if not matches:
        raise FileNotFoundError(f"No Debian Translation-en index matches {DEFAULT_GLOB}. Fetch it: {INSTALL_HINT}")
    return Path(matches[0])


def read_descriptions(path: str | Path) -> Iterator[tuple[str, str, str]]:
    """Yields ``(package, summary, long description)`` from a Translation-en file (plain or compressed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist. {INSTALL_HINT}")
    if path.suffix in (".lz4", ".xz", ".gz", ".zst"):
        text = subprocess.run(
            ["/usr/lib/apt/apt-helper", "cat-file", str(path)], capture_output=True, text=True, check=True
        ).stdout
    else:
        text = path.read_text(encoding="utf-8", errors="replace")
    for stanza in text.split("\n\n"):
        package = re.search(r"^Package: (.+)$", stanza, re.M)
        description = re.search(r"^Description-en: (.*)\n((?: .*\n?)*)", stanza, re.M)
        if package and description:
            lines = [line[1:] for line in description.group(2).splitlines()]
            body = "\n".join("" if line == "." else line for line in lines).strip()
            yield package.group(1).strip(), description.group(1).strip(), body


def build(source: str | Path | None = None, seed: int = 0, dev_fraction: float = 0.05, test_fraction: float = 0.1):
    """Builds the train / dev / test splits (``{split name: RetrievalSplit}``).

    Kept: summaries of at least three words whose long description has at least ten.
    """
    chosen: dict[str, tuple[str, str, str]] = {}
    for package, summary, body in read_descriptions(source or default_source()):
        if RESERVED.match(package) or len(summary.split()) < 3 or len(body.split()) < 10:
            continue
        group = " ".join(body.split("\n\n")[0].split()).lower()
        if group not in chosen or (len(package), package) < (len(chosen[group][0]), chosen[group][0]):
            chosen[group] = (package, summary, body)
    splits = {name: RetrievalSplit() for name in SPLITS}
    for group, (package, summary, body) in sorted(chosen.items(), key=lambda item: item[1][0]):
        split = splits[assign_split(package, seed, dev_fraction, test_fraction)]
        split.add_pair(f"q-{package}", summary, package, body, group=package)
    return splits
