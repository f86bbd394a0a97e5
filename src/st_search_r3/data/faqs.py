"""Questions people ask, with their answers: FAQs that Debian 12 main packages ship.

- ``faqs``: the Perl FAQ (``perlfaq1`` to ``perlfaq9``, package ``perl-doc``) and the Z Shell FAQ
  (package ``zsh-doc``): train, dev and test splits, split by question.
- ``vimfaq``: the Vim FAQ (package ``vim-doc``), held out of training entirely: a test split only, the
  question-style task that no training query resembles.

The FAQs of :data:`SUPPLEMENT_PACKAGES` (perlunifaq, the libnet and IO::Compress FAQs, gitfaq, the screen,
fetchmail and procmail FAQs) add training questions to ``faqs`` only, so its dev and test tasks stay those of
the Perl and Z Shell FAQs.

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
SUPPLEMENT_PACKAGES = ("perl-doc", "perl-modules-5.36", "git-doc", "screen", "fetchmail", "procmail")


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
    for paragraph in re.split(r"\n\s*\n", read_doc(path)):
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


def heading_entries(html: str, separator: str, paragraph_break: str) -> Iterator[tuple[str, str, str]]:
    """``(number, question, answer)`` of an HTML FAQ whose ``<h2>`` headings read ``number + separator +
    question``; the answer's paragraphs are split at ``paragraph_break`` (a pattern) and their lines joined."""
    parser = _HeadingSections()
    parser.feed(html)
    for heading, body in parser.sections:
        number, _, question = " ".join(heading.split()).partition(separator)
        paragraphs = [" ".join(p.split()) for p in re.split(paragraph_break, body)]
        yield number, question, "\n\n".join(p for p in paragraphs if p)


def read_doc(path: Path) -> str:
    """A documentation file's text, gunzipped where its name ends in ``.gz``."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return data.decode("utf-8", "replace")


def zsh_faq(root: Path) -> Iterator[tuple[str, str, str]]:
    """The Z Shell FAQ's HTML pages: ``<h2>`` headings ``"3.1: question"``; a line that starts unindented opens a
    paragraph."""
    for path in sorted((root / "usr" / "share" / "doc" / "zsh-common" / "html").glob("FAQ0*.html")):
        for number, question, answer in heading_entries(read_doc(path), ": ", r"\n\s*\n|\n(?=\S)"):
            yield f"zsh-{number}", question, answer


# ------------------------------------------------------------------------------------------- Vim: numbered text


def numbered_entries(text: str, number: str) -> Iterator[tuple[str, str, str]]:
    """``(number, question, answer)`` of a plain-text FAQ whose entries start a line with ``number`` (a pattern)
    and ``". "``: the question runs to the first blank line, the answer to the next entry or ``SECTION`` line."""
    for entry in re.split(rf"^(?={number}\. )|^(?=SECTION \d+)", text, flags=re.MULTILINE):
        match = re.match(rf"({number})\. (.*?)\n\s*\n(.*)", entry, flags=re.DOTALL)
        if match:
            number_found, question, answer = match.groups()
            paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", answer)]
            yield number_found, " ".join(question.split()), "\n\n".join(p for p in paragraphs if p)


def vim_faq(root: Path) -> Iterator[tuple[str, str, str]]:
    """The Vim FAQ's entries: ``N.M. question`` at the start of a line (the index above indents them)."""
    text = read_doc(root / "usr" / "share" / "doc" / "vim" / "FAQ.gz")
    for number, question, answer in numbered_entries(text, r"\d+\.\d+"):
        yield f"vim-{number}", question, answer


# --------------------------------------------------------------------------- the training-only supplement


def perl_module_faqs(root: Path) -> Iterator[tuple[str, str, str]]:
    """perlunifaq and the FAQs of Net::libnet and IO::Compress; their ``=head2`` lines that are no question
    ("Disclaimer", "Accessing .tar.Z files") are section titles and are skipped."""
    perl = root / "usr" / "share" / "perl"
    paths = {
        p.resolve(): p
        for p in [
            *perl.glob("*/pod/perlunifaq.pod"),
            *perl.glob("*/Net/libnetFAQ.pod"),
            *perl.glob("*/IO/Compress/FAQ.pod"),
        ]
    }  # 5.36 -> 5.36.0
    for path in sorted(paths.values()):
        name = "-".join(path.relative_to(perl).with_suffix("").parts[1:]).replace("pod-", "")
        for number, (question, answer) in enumerate(read_pod_faq(path)):
            if question.endswith("?"):
                yield f"{name}-{number}", question, answer


def git_faq(root: Path) -> Iterator[tuple[str, str, str]]:
    """gitfaq(7) in AsciiDoc: ``[[anchor]]``, then ``question::``, then the answer up to the next entry or title."""
    text = read_doc(root / "usr" / "share" / "doc" / "git-doc" / "gitfaq.txt")
    pattern = r"^\[\[([\w-]+)\]\]\n([^\n]+?)::\n(.*?)(?=^\[\[|^[^\n]+\n-{3,}\n|\Z)"
    for anchor, question, answer in re.findall(pattern, text, flags=re.MULTILINE | re.DOTALL):
        answer = re.sub(r"linkgit:([\w-]+)\[(\d)\]", r"\1(\2)", answer.replace("`", ""))
        paragraphs = [" ".join(p.split()) for p in re.split(r"\n\+\n|\n\s*\n", answer)]
        yield f"git-{anchor}", " ".join(question.replace("`", "").split()), "\n\n".join(p for p in paragraphs if p)


def screen_faq(root: Path) -> Iterator[tuple[str, str, str]]:
    """The screen FAQ: ``Q:`` and ``A:`` blocks."""
    text = read_doc(root / "usr" / "share" / "doc" / "screen" / "FAQ.gz")
    for number, (question, answer) in enumerate(re.findall(r"^Q:(.*?)^A:(.*?)(?=^Q:|\Z)", text, re.M | re.S)):
        yield f"screen-{number}", " ".join(question.split()), " ".join(answer.split())


def fetchmail_faq(root: Path) -> Iterator[tuple[str, str, str]]:
    """The fetchmail FAQ (HTML): every ``<h2>`` is ``"G1. question"``, its text the answer."""
    html = read_doc(root / "usr" / "share" / "doc" / "fetchmail" / "fetchmail-FAQ.html")
    # Its lines are wrapped in the source: only a blank line breaks a paragraph.
    for number, question, answer in heading_entries(html, ". ", r"\n\s*\n"):
        yield f"fetchmail-{number}", question, answer


def procmail_faq(root: Path) -> Iterator[tuple[str, str, str]]:
    """The procmail FAQ: ``N. question`` at the start of a line, the answer indented below it."""
    text = read_doc(root / "usr" / "share" / "doc" / "procmail" / "FAQ")
    for number, question, answer in numbered_entries(text, r"\d+"):
        yield f"procmail-{number}", question, answer


READERS = {"faqs": (perl_faq, zsh_faq), "vimfaq": (vim_faq,)}
SUPPLEMENT_READERS = (perl_module_faqs, git_faq, screen_faq, fetchmail_faq, procmail_faq)


def read_faqs(source: str, root: Path, readers=None, seen: set[str] | None = None) -> Iterator[tuple[str, str, str]]:
    """``(entry id, question, answer)`` of every kept entry of a source's FAQs (see the module's guards), read
    by ``readers`` (default: the source's own); questions in ``seen`` are skipped, and each kept one is added."""
    seen = set() if seen is None else seen
    for reader in readers or READERS[source]:
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
    supplement_folder: str | Path | None = None,
    supplement: bool = True,
) -> dict[str, RetrievalSplit]:
    """Builds the splits of ``source`` (``"faqs"`` or the held-out ``"vimfaq"``, whose every entry is test).

    Args:
        folder: Where the packages are downloaded and unpacked; default ``<home>/sources/<source>``.
        dev_fraction, test_fraction: Shares of the questions in dev and test (``faqs``: small FAQs need
            larger shares than the other sources for dev and test sets of a useful size).
        supplement_folder: Where :data:`SUPPLEMENT_PACKAGES` are; default ``<home>/sources/faqs_supplement``.
        supplement: ``faqs`` only: whether to add the supplement's questions to the training split.
    """
    from st_search_r3.base_model import home_dir

    if source not in PACKAGES:
        raise ValueError(f"Unknown FAQ source {source!r}; choose from {sorted(PACKAGES)}")
    folder = Path(folder) if folder else home_dir() / "sources" / source
    root = unpacked_packages(folder, PACKAGES[source])
    splits, seen = {name: RetrievalSplit() for name in SPLITS}, set()
    for entry, question, answer in read_faqs(source, root, seen=seen):
        split = "test" if source == "vimfaq" else assign_split(entry, seed, dev_fraction, test_fraction)
        splits[split].add_pair(f"q-{entry}", question, entry, answer, group=entry)
    if source == "faqs" and supplement:
        folder = Path(supplement_folder) if supplement_folder else home_dir() / "sources" / "faqs_supplement"
        root = unpacked_packages(folder, SUPPLEMENT_PACKAGES)
        for entry, question, answer in read_faqs(source, root, SUPPLEMENT_READERS, seen):
            splits["train"].add_pair(f"q-{entry}", question, entry, answer, group=entry)
    return splits
