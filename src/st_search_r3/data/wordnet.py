"""Reverse dictionary from WordNet 3.0: the query is a definition, the document is the word.

Source: Debian package ``wordnet-base`` (``/usr/share/wordnet/data.{noun,verb,adj,adv}``, the same format
as nltk's wordnet corpus). WordNet 3.0, Copyright 2006 by Princeton University, WordNet 3.0 license
(permissive, the copyright notice must be kept; see ``/usr/share/doc/wordnet-base/copyright``).

One synset gives one pair. Query: the gloss's definition. Document: the lemma names, the hypernyms'
lemma names and the gloss's example sentences; never the definition itself, so the model has to think
of the word. Splits are by synset; a split's corpus holds only its own synsets' documents.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from st_search_r3.data.retrieval_split import SPLITS, RetrievalSplit, assign_split

DEFAULT_ROOT = Path("/usr/share/wordnet")
POS_FILES = {"n": "data.noun", "v": "data.verb", "a": "data.adj", "r": "data.adv"}
INSTALL_HINT = "sudo apt-get install wordnet-base   (or pass the folder holding data.noun, data.verb, ...)"


@dataclass
class Synset:
    id: str
    lemmas: list[str]
    definition: str
    examples: list[str]
    hypernyms: list[str]


def read_synsets(root: str | Path = DEFAULT_ROOT) -> Iterator[Synset]:
    """Parses WordNet's ``data.*`` files. Raises ``FileNotFoundError`` with an install hint if absent."""
    root = Path(root)
    missing = [name for name in POS_FILES.values() if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(f"WordNet files {missing} not found in {root}. Install them: {INSTALL_HINT}")
    for pos, name in POS_FILES.items():
        with open(root / name, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.startswith("  "):  # the license header lines start with two spaces
                    yield _parse_line(line, pos)


def _parse_line(line: str, pos: str) -> Synset:
    data, _, gloss = line.partition(" | ")
    fields = data.split()
    offset, word_count = fields[0], int(fields[3], 16)
    lemmas = [fields[4 + 2 * i] for i in range(word_count)]
    lemmas = [re.sub(r"\(.*\)$", "", lemma).replace("_", " ") for lemma in lemmas]
    cursor = 4 + 2 * word_count
    pointer_count = int(fields[cursor])
    hypernyms = []
    for i in range(pointer_count):
        symbol, target, target_pos = fields[cursor + 1 + 4 * i : cursor + 4 + 4 * i]
        if symbol in ("@", "@i"):
            hypernyms.append(f"{target}-{'a' if target_pos == 's' else target_pos}")
    parts = [part.strip() for part in gloss.strip().split(";")]
    definition = "; ".join(part for part in parts if part and not part.startswith('"'))
    examples = [part.strip('"') for part in parts if part.startswith('"')]
    return Synset(f"{offset}-{pos}", lemmas, definition, examples, hypernyms)


def document_text(synset: Synset, lemmas_of: dict[str, list[str]]) -> str:
    """The document of a synset: its words, what kind of thing it is, and how it is used."""
    text = ", ".join(synset.lemmas)
    kinds = [lemma for hypernym in synset.hypernyms for lemma in lemmas_of.get(hypernym, [])[:2]]
    if kinds:
        text += ". A kind of: " + ", ".join(kinds)
    if synset.examples:
        text += ". Usage: " + " / ".join(synset.examples)
    return text


def build(root: str | Path = DEFAULT_ROOT, seed: int = 0, dev_fraction: float = 0.05, test_fraction: float = 0.1):
    """Builds the train / dev / test splits.

    Synsets whose definition has fewer than three words are dropped (too little to search with).

    Returns:
        ``{split name: RetrievalSplit}``.
    """
    synsets = list(read_synsets(root))
    lemmas_of = {synset.id: synset.lemmas for synset in synsets}
    splits = {name: RetrievalSplit() for name in SPLITS}
    for synset in synsets:
        if len(synset.definition.split()) < 3:
            continue
        split = splits[assign_split(synset.id, seed, dev_fraction, test_fraction)]
        split.add_pair(f"q{synset.id}", synset.definition, synset.id, document_text(synset, lemmas_of), group=synset.id)
    return splits
