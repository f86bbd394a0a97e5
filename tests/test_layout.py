"""The house rules of the package layout: encoding stays light."""

from __future__ import annotations

import subprocess
import sys


def test_encoding_imports_none_of_the_training_or_benchmark_stack(tiny_llm):
    code = f"""
import sys
import st_search_r3.module
from sentence_transformers import SentenceTransformer
from st_search_r3 import SearchR3
model = SentenceTransformer(modules=[SearchR3({tiny_llm!r}, max_reasoning_tokens=2)])
model.encode_query(["a wild cat"])
model.encode_document(["lion"])
print(sorted(name for name in ("trl", "faiss", "matplotlib", "bm25s", "mteb") if name in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
