"""Reasoning worth imitating, written from what the data knows about each query's relevant document.

No teacher LLM is at hand offline, so the reasoning a query should get is condensed from its relevant
document, LREM-style: a few key terms and related words, short enough for a 135M model to learn and
to generate quickly. Per source:

- WordNet (definition -> words): ``Key terms: <the synset's words>. Related: <its hypernyms' words>.``
  The model learns to name the thing a definition describes (a reverse dictionary) and its kind.
- Debian (summary -> long description): ``Key terms: <the description's most distinctive words>.``,
  the words with the highest tf-idf among the source's training documents, leaving out the query's own.
- Python code (docstring line -> code): ``Function: <name>(<parameters>). Key terms: <identifiers>.``,
  the identifiers the code uses most, leaving out keywords and the query's own words.

Targets are computed from training documents only, so no dev or test document shapes them.
"""

from __future__ import annotations

import keyword
import math
import re
from collections import Counter

WORD = re.compile(r"[A-Za-z][A-Za-z0-9+#_-]*[A-Za-z0-9+#]|[A-Za-z]")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
STOPWORDS = frozenset(
    """a about above after again all also an and any are as at be been being both but by can could did do does
    doing down during each etc few for from further had has have having he her here hers him his how i if in
    into is it its itself just may me might more most must my no nor not now of off on once only or other our
    out over own same she should so some such than that the their them then there these they this those
    through to too under until up use used uses using very via was we well were what when where which while
    who whom why will with within would you your provides package contains includes program programs
    support supports allows based features file files""".split()
)
CODE_NOISE = frozenset(keyword.kwlist) | {"self", "cls", "args", "kwargs", "print", "len", "str", "int", "isinstance"}


def wordnet_target(document: str) -> str:
    """``Key terms: ... Related: ...`` from a WordNet document (``words. A kind of: ... Usage: ...``)."""
    words, _, rest = document.partition(". A kind of: ")
    words = words.split(". Usage: ")[0]
    kinds = rest.split(". Usage: ")[0]
    return f"Key terms: {words}." + (f" Related: {kinds}." if kinds else "")


class DistinctiveWords:
    """The words of a document that are frequent in it and rare in the collection (tf-idf).

    Words found in fewer than ``min_documents`` documents are left out: names and one-off words cannot be
    guessed from a query, so they teach the model nothing it can repeat at inference.

    Args:
        documents: The collection the document frequencies come from (the source's training documents).
        top_k: How many words a document gives.
        min_documents: Fewest documents a word must occur in.
    """

    def __init__(self, documents: list[str], top_k: int = 6, min_documents: int = 3) -> None:
        self.top_k = top_k
        self.min_documents = min_documents
        self.document_frequency = Counter(w for doc in documents for w in {w.lower() for w in WORD.findall(doc)})
        self.num_documents = max(len(documents), 1)

    def __call__(self, document: str, exclude: str = "") -> list[str]:
        excluded = {w.lower() for w in WORD.findall(exclude)} | STOPWORDS
        counts = Counter(w.lower() for w in WORD.findall(document))
        first_spelling = {}
        for w in WORD.findall(document):
            first_spelling.setdefault(w.lower(), w)
        scores = {
            w: count * math.log(self.num_documents / (1 + self.document_frequency[w]))
            for w, count in counts.items()
            if w not in excluded and len(w) > 2 and not w.isdigit() and self.document_frequency[w] >= self.min_documents
        }
        ranked = sorted(scores, key=lambda w: (-scores[w], w))
        return [first_spelling[w] for w in ranked[: self.top_k]]


def debian_target(query: str, document: str, words: DistinctiveWords) -> str:
    return f"Key terms: {', '.join(words(document, exclude=query))}."


def code_target(query: str, document: str, top_k: int = 5) -> str:
    """``Function: name(params). Key terms: ...`` from a function's code."""
    signature = re.search(r"def\s+(\w+)\s*\(([^)]*)\)?", document)
    parts = []
    if signature:
        name = signature.group(1)
        params = [p.split("=")[0].split(":")[0].strip(" *") for p in signature.group(2).split(",")]
        params = [p for p in params if p and p not in ("self", "cls")]
        parts.append(f"Function: {name}({', '.join(params)}).")
        seen = {name, *params}
    else:
        seen = set()
    excluded = {w.lower() for w in WORD.findall(query)}
    counts = Counter(
        w
        for w in IDENTIFIER.findall(document)
        if w not in CODE_NOISE and w not in seen and w.lower() not in excluded and w.lower() not in STOPWORDS
    )
    terms = [w for w, _ in counts.most_common(top_k) if len(w) > 1]
    if terms:
        parts.append(f"Key terms: {', '.join(terms)}.")
    return " ".join(parts)


def reasoning_targets(source: str, queries: list[str], documents: list[str]) -> list[str]:
    """The target reasoning of each ``(query, relevant document)`` pair of one source's training set."""
    if source == "wordnet":
        return [wordnet_target(d) for d in documents]
    if source in ("debian", "manpages", "infomanuals"):  # prose descriptions: their distinctive words
        words = DistinctiveWords(documents)
        return [debian_target(q, d, words) for q, d in zip(queries, documents)]
    if source == "pycode":
        return [code_target(q, d) for q, d in zip(queries, documents)]
    known = "wordnet, debian, pycode, manpages, infomanuals"
    raise ValueError(f"No reasoning targets for source {source!r} (known: {known})")
