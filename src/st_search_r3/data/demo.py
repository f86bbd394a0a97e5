"""The WordNet sample shipped inside the package (40 queries, 600 documents from the WordNet test split):
the demo, the ``SearchR3WordNetDemo`` MTEB task and the unit tests run on it anywhere, offline."""

from __future__ import annotations

from pathlib import Path

from st_search_r3.data.retrieval_split import RetrievalSplit

DEMO_DIR = Path(__file__).parent.parent / "resources" / "wordnet_demo"


def demo_split() -> RetrievalSplit:
    """The shipped WordNet sample as a :class:`RetrievalSplit`."""
    return RetrievalSplit.load(DEMO_DIR / "test")
