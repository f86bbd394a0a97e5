"""The RL corpus index with several processes: every rank encodes its share of a refresh and all gather the vectors.
Measures a full build and a refresh, one process against several, on the same machine and documents.

    python research/corpus_refresh_ranks.py                       # runs 1 process, then 2, and compares
    python research/corpus_refresh_ranks.py --processes 1 2 4 --documents 512 --refresh 64

Documents: the WordNet sample that ships in the package; model: the installed search-r3 (reasoning off, the
documents' path). With N processes each gets 1/N of the threads, so the comparison is at equal CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parent.parent


def worker(documents: int, refresh: int, vectors_out: Path) -> None:
    """One rank: build the index, refresh it once, report the times; the main rank saves the vectors."""
    import numpy as np
    import torch.distributed as dist
    from accelerate import PartialState
    from sentence_transformers import SentenceTransformer

    from st_search_r3.data.demo import demo_split
    from st_search_r3.install import install
    from st_search_r3.training.corpus_index import CorpusIndex

    if "RANK" in os.environ:
        dist.init_process_group("gloo")
    model = SentenceTransformer(str(install()), trust_remote_code=True, device="cpu")
    texts = list(demo_split().corpus.values())[:documents]
    encode = model.encode_document
    index = CorpusIndex(list(range(len(texts))), texts, encode, refresh_size=refresh)
    start = time.perf_counter()
    index.refresh(step=0)
    built = time.perf_counter() - start
    start = time.perf_counter()
    index.refresh(step=1)
    refreshed = time.perf_counter() - start
    state = PartialState()
    rank, size = state.process_index, state.num_processes
    if rank == 0:
        np.save(vectors_out, index.vectors)
        print(json.dumps({"processes": size, "build_s": built, "refresh_s": refreshed}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--documents", type=int, default=512)
    parser.add_argument("--refresh", type=int, default=64)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # where the worker saves its vectors
    parser.add_argument("--output", type=Path, default=ROOT / "research" / "results" / "corpus_refresh_ranks.json")
    args = parser.parse_args()
    if args.worker:
        return worker(args.documents, args.refresh, args.worker)
    import numpy as np

    rows, vectors = [], []
    for processes in args.processes:
        threads = max(1, (os.cpu_count() or 1) // processes)
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        command = command if processes > 1 else [sys.executable]
        saved = Path(f"/tmp/corpus_refresh_{processes}.npy")
        command += [__file__, "--worker", str(saved), "--documents", str(args.documents)]
        command += ["--refresh", str(args.refresh)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "ACCELERATE_USE_CPU": "1"}
        output = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
        vectors.append(np.load(saved))
    one = rows[0]
    for row, held in zip(rows, vectors):
        row["build_speedup"] = one["build_s"] / row["build_s"]
        row["refresh_speedup"] = one["refresh_s"] / row["refresh_s"]
        row["min_cos_to_one_process"] = float((held * vectors[0]).sum(axis=1).min())
    report = {"command": " ".join(["python", "research/corpus_refresh_ranks.py", *sys.argv[1:]]),
              "documents": args.documents, "refresh": args.refresh, "cpus": os.cpu_count(), "rows": rows}  # fmt: skip
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    for row in rows:
        print(
            f"{row['processes']} process(es): build {row['build_s']:.1f} s ({row['build_speedup']:.2f}x), refresh "
            f"{row['refresh_s']:.2f} s ({row['refresh_speedup']:.2f}x), min cosine to one process "
            f"{row['min_cos_to_one_process']:.6f}"
        )


if __name__ == "__main__":
    main()
