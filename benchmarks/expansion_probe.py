"""Dev probe: do the keyword writer's guesses carry anything the stage-1 embedder does not already know?

The writer of ``train/configs/sft_keyword_writer.yaml`` (``runs/sft_keyword_writer/final``) reasons on the
first 100 dev queries of each task (greedy, its saved settings), cut at the first period (it never learned
to stop). The shipped stage-1 embedder, as trained, embeds each query without reasoning ("off"), the query
followed by the whole guess, and the query followed by the guessed terms in parentheses (plain query
expansion through the direct path the embedder was trained on), each alone and fused with "off".

    python benchmarks/expansion_probe.py
    python benchmarks/expansion_probe.py --oracle   # the guesses replaced by the true keyword targets

``--oracle`` bounds what a perfect writer could give: the terms condensed from each query's relevant
document (``st_search_r3.data.reasoning_targets``, the writer's training targets), answer included.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from st_search_r3.data.reasoning_targets import reasoning_targets
from st_search_r3.install import SHIPPED_WEIGHTS
from st_search_r3.module import SearchR3
from st_search_r3.training.sft_data import first_sentences

sys.path.insert(0, str(Path(__file__).parent))
from keyword_writer_probe import cached_documents  # noqa: E402
from reasoning_report import load_task, mean_ndcg_at_10  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def guesses(tasks: dict) -> dict[str, list[str]]:
    writer = SentenceTransformer("runs/sft_keyword_writer/final", trust_remote_code=True, device="cpu")[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return {
            s: [first_sentences(r, 1, every_period=True) for r in writer.reasoning_of(queries)]
            for s, (queries, _, _) in tasks.items()
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--oracle", action="store_true")
    args = parser.parse_args()
    tasks = {s: load_task(s, "dev", 100) for s in ("wordnet", "debian", "pycode")}
    if args.oracle:
        cuts = {
            s: reasoning_targets(s, queries, [corpus[i] for i in relevant])
            for s, (queries, corpus, relevant) in tasks.items()
        }
    else:
        cuts = guesses(tasks)
    embedder = SearchR3(str(SHIPPED_WEIGHTS))
    embedder.auto_model = embedder.auto_model.merge_and_unload()
    model = SentenceTransformer(modules=[embedder], similarity_fn_name="cosine")
    scores = {}
    for s, (queries, corpus, relevant) in tasks.items():
        documents = cached_documents(model, s, corpus)
        off = model.encode_query(queries, batch_size=16, reasoning=False)
        terms = [c.removeprefix("Key terms:").strip() for c in cuts[s]]
        vectors = {"off": off}
        expanded = [f"{q} {c}" for q, c in zip(queries, cuts[s])]
        vectors["expanded alone"] = model.encode_query(expanded, batch_size=16, reasoning=False)
        expanded = [f"{q} ({t})" for q, t in zip(queries, terms)]
        vectors["expanded terms alone"] = model.encode_query(expanded, batch_size=16, reasoning=False)
        for name in ("expanded alone", "expanded terms alone"):
            fused = off + vectors[name]
            vectors[name.replace("alone", "fused")] = fused / np.linalg.norm(fused, axis=1, keepdims=True)
        scores[s] = {k: round(100 * mean_ndcg_at_10(v, documents, relevant), 1) for k, v in vectors.items()}
        print(s, scores[s], cuts[s][:3], flush=True)
    name = "expansion_probe_oracle_dev.json" if args.oracle else "expansion_probe_dev.json"
    (RESULTS / name).write_text(json.dumps({"scores": scores, "guesses": cuts}, indent=2))


if __name__ == "__main__":
    main()
