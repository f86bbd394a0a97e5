"""Dev nDCG@10 of the installed search-r3 at several document truncations, to choose ``max_seq_length``.

    python benchmarks/truncation_dev.py --tasks infomanuals manpages pycode --lengths 128 160 192

Uses the dev evaluator of training (sentence-transformers' InformationRetrievalEvaluator on every query and
document of each dev split), so figures compare across lengths, not with benchmarks/quality.py's MTEB runs.
"""

from __future__ import annotations

import argparse
import time

from sentence_transformers import SentenceTransformer

from st_search_r3.data.build import data_dir
from st_search_r3.training.evaluation import dev_evaluator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="search-r3")
    parser.add_argument("--tasks", nargs="+", default=["infomanuals", "manpages", "pycode"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[128, 160, 192])
    args = parser.parse_args()
    model = SentenceTransformer(args.model, trust_remote_code=True)
    print("| task | max_seq_length | nDCG@10 | seconds |\n|---|---:|---:|---:|")
    for task in args.tasks:
        evaluator = dev_evaluator(data_dir(), task, num_queries=10**9)
        for length in args.lengths:
            model.max_seq_length = length
            start = time.perf_counter()
            ndcg = evaluator(model)[f"{task}-dev_cosine_ndcg@10"]
            print(f"| {task} | {length} | {100 * ndcg:.1f} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
