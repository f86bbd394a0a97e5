"""BM25 beside the dense search: the words a query shares with its answer, which a 135M model cannot judge.

The shipped model finds the relevant document and ranks it second to fifth; the words that would lift it are in
the corpus. :func:`hybrid_scores` adds ``weight`` times each document's BM25 score, divided by the query's best BM25
score, to its cosine, over the whole corpus. Measured with ``research/reading_probe.py --lexical`` (weight 0.1,
chosen on the dev splits): test nDCG@10 84.5 -> 86.4 over the seven tasks (docs/evaluation.md).

BM25 is bm25s's, with English stopwords and the Snowball stemmer, as mteb's BM25 baseline: ``pip install
"st-search-r3[lexical]"``. Encoding never imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import torch

LEXICAL_WEIGHT = 0.1  # chosen on the dev splits' mean nDCG@10 (docs/evaluation.md); search-r3-hybrid in MTEB uses it
INSTALL_HINT = 'lexical search needs bm25s and PyStemmer: pip install "st-search-r3[lexical]"'


class LexicalIndex:
    """BM25 over a corpus, indexed once (bm25s, English stopwords, Snowball stemmer).

    Args:
        corpus: Document texts.
    """

    def __init__(self, corpus: Sequence[str]):
        try:
            import bm25s
            import Stemmer
        except ImportError as error:
            raise ImportError(INSTALL_HINT) from error
        self._tokenize = partial(
            bm25s.tokenize, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False
        )
        tokens, self._size = self._tokenize(list(corpus)), len(corpus)
        self._index = bm25s.BM25() if tokens.vocab else None  # None: no document has a word to match
        if self._index is not None:
            self._index.index(tokens, show_progress=False)

    def scores(self, queries: Sequence[str]) -> torch.Tensor:
        """BM25 of every query against every document, shape ``(len(queries), len(corpus))``, float32.

        A query with no indexed word (empty, or stopwords only) scores 0 against every document.
        """
        scores = np.zeros((len(queries), self._size), dtype=np.float32)
        for row, words in enumerate(self._tokenize(list(queries), return_ids=False)):
            if words and self._index is not None:  # bm25s cannot score an empty list of words
                scores[row] = self._index.get_scores(words)
        return torch.from_numpy(scores)


def hybrid_scores(cosine: torch.Tensor, lexical: torch.Tensor, weight: float) -> torch.Tensor:
    """``cosine + weight * lexical / (the query's best lexical score)``, row by row.

    Dividing by the best score bounds BM25's part to ``[0, weight]`` whatever the query's length; a query without a
    lexical match keeps its cosine ranking.

    Args:
        cosine: Query-document cosines, shape ``(queries, documents)``.
        lexical: BM25 scores of the same pairs (:meth:`LexicalIndex.scores`).
        weight: BM25's share; 0 gives the cosines back.
    """
    if cosine.shape != lexical.shape:
        raise ValueError(f"cosine {tuple(cosine.shape)} and lexical {tuple(lexical.shape)} scores differ in shape")
    best = lexical.amax(dim=1, keepdim=True).clamp_min(1e-9)
    return cosine + weight * lexical.to(cosine.dtype) / best
