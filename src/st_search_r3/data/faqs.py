"""Questions people ask, with their answers: FAQs that Debian 12 main packages ship.

- ``faqs``: the Perl FAQ (``perlfaq1`` to ``perlfaq9``, package ``perl-doc``) and the Z Shell FAQ
  (package ``zsh-doc``): train, dev and test splits, split by question.
- ``vimfaq``: the Vim FAQ (package ``vim-doc``), held out of training entirely: a test split only, the
  question-style task that no training query resembles.

The query is the question as its FAQ asks it, the document the answer (formatting dropped, code kept as
text, cut to :data:`MAX_DOCUMENT_CHARS`). Guards: questions whose answer has fewer than
:data:`MIN_ANSWER_WORDS` words (pointers to another entry) are dropped, as are questions of fewer than
:data:`MIN_QUESTION_WORDS` words (headings such as "What is it?" that need their FAQ's title to be
understood); an author's credit that opens an answer is removed; a question asked twice (case and
spacing aside) keeps its first answer only, so that no two queries share a text across splits. The packages
are fetched with ``apt-get download`` into ``<st-search-r3 home>/sources/<source>``; each FAQ is under its
own license (Perl's Artistic/GPL, the Zsh FAQ's copyright notice, the Vim license).
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

from st_search_r3.data.debian_archive import unpacked_packages
from st_search_r3.data.retrieval_split import SPLITS, RetrievalSplit, assign_split

MAX_DOCUMENT_CHARS = 4000
MIN_ANSWER_WORDS = 10
MIN_QUESTION_WORDS = 4
PACKAGES = {"faqs": ("perl-doc", "zsh-doc"), "vimfaq": ("vim-doc",)}


# ---------------------------------------------------------------------------------------------- Perl: POD


_POD_CODES = re.compile(r"[A-Z]<(?:<+\s(.*?)\s>+|([^<>]*))>")


def pod_text(text: str) -> str:
    """Plain text of POD formatting codes: ``C<...>``, ``C<< ... >>``, ``L<text|target>``, ``E<gt>``...; index
    entries (``X<...>``) and ``Z<>`` are dropped."""
    entities = {"lt": "<", "gt": ">", "verbar": "|", "sol": "/", "quot": '"', "amp": "&"}
    text = re.sub(r"E<(\w+)>", lambda m: entities.get(m.group(1), ""), text)
    # X<> is an index entry (perlfaq lists search keywords after a question): not text a reader sees.
    text = " ".join(re.sub(r"[XZ]<(?:<+\s.*?\s>+|[^<>]*)>", "", text).split())
    while True:
        replaced = _POD_CODES.sub(lambda m: (m.group(1) or m.group(2) or "").split("|")[0], text)
        if replaced == text:
            return text
        text = replaced


def read_pod_faq(path: Path) -> Iterator[tuple[str, str]]:
    """``(question, answer)`` for every ``=head2`` of a perlfaq POD file; ``=begin``/``=end`` blocks dropped."""
    question, paragraphs, skipping = None, [], False
    for paragraph in re.split(r"\n\s*\n", path.read_text(encoding="utf-8", errors="replace")):
        command = paragraph.split(None, 1)[0] if paragraph.strip() else ""
        if command in ("=head1", "=head2"):
            if question:
                yield question, "\n\n".join(paragraphs)
            question, paragraphs = (
                (pod_text(" ".join(paragraph.split()[1:])), []) if command == "=head2" else (None, [])
            )
        elif command == "=begin":
            skipping = True
        elif command == "=end":
            skipping = False
        elif command == "=item":
            paragraphs.append(pod_text(" ".join(paragraph.split()[1:])))
        elif question and not skipping and not command.startswith("="):
            # Verbatim paragraphs (code) keep their lines; text paragraphs are joined into one line.
            verbatim = paragraph[:1].isspace()
            paragraphs.append(paragraph.strip("\n") if verbatim else pod_text(" ".join(paragraph.split())))
    if question:
        yield question, "\n\n".join(paragraphs)


def perl_faq(root: Path) -> Iterator[tuple[str, str, str]]:
    for path in sorted((root / "usr" / "share" / "perl").glob("*/pod/perlfaq[1-9].pod")):
        for number, (question, answer) in enumerate(read_pod_faq(path)):
            # "(contributed by brian d foy)" and the like credit an author; they say nothing of the answer.
            answer = re.sub(r"^\([^)]*\bcontributed by[^)]*\)\s*", "", answer, flags=re.IGNORECASE)
            yield f"{path.stem}-{number}", question, answer


# ----------------------------------------------------------------------------------------------- Zsh: HTML


class _HeadingSections(HTMLParser):
    """Collects ``(heading, text)`` for every ``<h2>`` of an HTML page: the heading's text and all text up to the
    next heading."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[list[str]] = []
        self.in_heading = False
        self.in_body = False

    def handle_starttag(self, tag, attrs):
        if tag in ("h1", "h2", "h3"):
            self.in_heading, self.in_body = tag == "h2", False
            if tag == "h2":
                self.sections.append(["", ""])
        elif tag in ("p", "pre", "li", "br") and self.in_body:
            self.sections[-1][1] += "\n"

    def handle_endtag(self, tag):
        if tag == "h2" and self.in_heading:
            self.in_heading, self.in_body = False, True

    def handle_data(self, data):
        if self.in_heading:
            self.sections[-1][0] += data
        elif self.in_body:
            self.sections[-1][1] += data


def zsh_faq(root: Path) -> Iterator[tuple[str, str, str]]:
    for path in sorted((root / "usr" / "share" / "doc" / "zsh-common" / "html").glob("FAQ0*.html")):
        parser = _HeadingSections()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        for heading, body in parser.sections:
            number, _, question = " ".join(heading.split()).partition(": ")
            paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n|\n(?=\S)", body)]
            yield f"zsh-{number}", question, "\n\n".join(p for p in paragraphs if p)


# ------------------------------------------------------------------------------------------- Vim: numbered text


def vim_faq(root: Path) -> Iterator[tuple[str, str, str]]:
    """The Vim FAQ's entries: ``N.M. question`` at the start of a line (the index above indents them), the
    question running to the first blank line, the answer to the next entry or section."""
    text = gzip.decompress((root / "usr" / "share" / "doc" / "vim" / "FAQ.gz").read_bytes()).decode("utf-8", "replace")
    entries = re.split(r"^(?=\d+\.\d+\. )|^(?=SECTION \d+)", text, flags=re.MULTILINE)
    for entry in entries:
        match = re.match(r"(\d+\.\d+)\. (.*?)\n\s*\n(.*)", entry, flags=re.DOTALL)
        if match:
            number, question, answer = match.groups()
            paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", answer)]
            yield f"vim-{number}", " ".join(question.split()), "\n\n".join(p for p in paragraphs if p)


READERS = {"faqs": (perl_faq, zsh_faq), "vimfaq": (vim_faq,)}


def read_faqs(source: str, root: Path) -> Iterator[tuple[str, str, str]]:
    """``(entry id, question, answer)`` of every kept entry of a source's FAQs (see the module's guards)."""
    seen = set()
    for reader in READERS[source]:
        for entry, question, answer in reader(root):
            key = " ".join(question.lower().split())
            if len(question.split()) < MIN_QUESTION_WORDS or key in seen or len(answer.split()) < MIN_ANSWER_WORDS:
                continue
            seen.add(key)
            yield entry, question, answer[:MAX_DOCUMENT_CHARS]


def build(
    source: str = "faqs",
    folder: str | Path | None = None,
    seed: int = 0,
    dev_fraction: float = 0.2,
    test_fraction: float = 0.3,
) -> dict[str, RetrievalSplit]:
    """Builds the splits of ``source`` (``"faqs"`` or the held-out ``"vimfaq"``, whose every entry is test).

    Args:
        folder: Where the packages are downloaded and unpacked; default ``<home>/sources/<source>``.
        dev_fraction, test_fraction: Shares of the questions in dev and test (``faqs``: small FAQs need
            larger shares than the other sources for dev and test sets of a useful size).
    """
    from st_search_r3.base_model import home_dir

    if source not in PACKAGES:
        raise ValueError(f"Unknown FAQ source {source!r}; choose from {sorted(PACKAGES)}")
    folder = Path(folder) if folder else home_dir() / "sources" / source
    root = unpacked_packages(folder, PACKAGES[source])
    splits = {name: RetrievalSplit() for name in SPLITS}
    for entry, question, answer in read_faqs(source, root):
        split = "test" if source == "vimfaq" else assign_split(entry, seed, dev_fraction, test_fraction)
        splits[split].add_pair(f"q-{entry}", question, entry, answer, group=entry)
    return splits
