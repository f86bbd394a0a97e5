"""The GPU path end to end on the real default model: encoding (batched == one by one; documents/s, queries/s),
5 SFT steps (pairs/s, peak memory), 2 GRPO steps with the ranking reward (completions/s, peak memory) and a
save/load round trip on a CUDA device. In-batch negatives across processes need several GPUs; on one they are
checked by tests/test_losses.py on 2 CPU processes.

    python benchmarks/gpu_smoke.py [--output benchmarks/results/gpu_smoke.json]
    python benchmarks/gpu_smoke.py --device cpu --output /tmp/cpu_smoke.json   # the same path on the CPU (slow)

Data: the WordNet sample that ships in the package (40 definitions, 600 documents), written as a JSONL of triplets
and a BEIR folder, so nothing needs building. Exits with status 2 and says so where there is no CUDA device.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).parent.parent


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def write_data(folder: Path) -> tuple[Path, Path]:
    """The shipped WordNet sample as triplets (a random other document as the negative) and a BEIR folder whose
    first 30 queries are ``train`` and the other 10 ``dev``."""
    from st_search_r3.data.beir import save_beir
    from st_search_r3.data.demo import demo_split
    from st_search_r3.data.retrieval_split import RetrievalSplit

    split, generator = demo_split(), random.Random(0)
    documents = list(split.corpus)
    with open(folder / "triplets.jsonl", "w") as handle:
        for query_id, relevant in split.qrels.items():
            negative = generator.choice([d for d in documents if d not in relevant])
            row = {"anchor": split.queries[query_id], "positive": split.corpus[next(iter(relevant))]}
            handle.write(json.dumps({**row, "negative": split.corpus[negative]}) + "\n")
    ids = list(split.qrels)
    parts = {
        name: RetrievalSplit(corpus=split.corpus, queries={q: split.queries[q] for q in chosen},
                             qrels={q: split.qrels[q] for q in chosen})
        for name, chosen in (("train", ids[:30]), ("dev", ids[30:]))
    }  # fmt: skip
    save_beir(folder / "beir", parts)
    return folder / "triplets.jsonl", folder / "beir"


def timed_script(script: str, config: str, *arguments) -> float:
    command = [sys.executable, str(ROOT / "train" / script), "--config", str(ROOT / "train" / "configs" / config)]
    start = time.perf_counter()
    result = subprocess.run([*command, *map(str, arguments)], capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"train/{script} failed:\n{result.stderr[-4000:]}")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_smoke.json")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("No CUDA device here: benchmarks/gpu_smoke.py checks the GPU path and needs one (nothing was run).")
        return 2
    from sentence_transformers import SentenceTransformer

    from st_search_r3.data.demo import demo_split
    from st_search_r3.install import install

    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    report = {"device": name, "torch": torch.__version__, "command": " ".join(sys.argv)}
    split = demo_split()
    queries, documents = list(split.queries.values())[:8], list(split.corpus.values())[:64]
    model = SentenceTransformer(str(install()), trust_remote_code=True, device=args.device)
    start = time.perf_counter()
    batched = model.encode_document(documents, batch_size=32)
    report["documents_per_s"] = len(documents) / (time.perf_counter() - start)
    single = np.stack([model.encode_document([text])[0] for text in documents])
    report["documents_batch_vs_single_min_cos"] = float(cosines(batched, single).min())
    model[0].max_reasoning_tokens = 32
    start = time.perf_counter()
    reasoned = model.encode_query(queries, reasoning=True, batch_size=8)
    report["reasoning_queries_per_s"] = len(queries) / (time.perf_counter() - start)
    model[0].forget_reasoning()
    alone = np.stack([model.encode_query([text], reasoning=True)[0] for text in queries])
    report["queries_batch_vs_single_min_cos"] = float(cosines(reasoned, alone).min())

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        triplets, beir = write_data(folder)
        gpu = ["--use_cpu", str(args.device == "cpu").lower(), "--bf16", str(args.device == "cuda").lower()]
        report["sft_5_steps_s"] = timed_script(
            "sft.py", "sft_smoke.yaml", "--base_model", "SmolLM2-135M-Instruct", "--train_data", triplets,
            "--eval_data", beir, "--output_dir", folder / "sft", "--max_steps", "5", "--max_seq_length", "256",
            "--max_reasoning_tokens", "32", "--reasoning_queries", "0", "--per_device_train_batch_size", "8", *gpu,
        )  # fmt: skip
        final = folder / "sft" / "final"
        sft = json.loads((final / "training_record.json").read_text())
        report["sft_pairs_per_s"] = sft["pairs_per_second"]
        report["sft_peak_gib"] = sft["peak_memory_per_rank"][0]["gib"]
        report["grpo_2_steps_s"] = timed_script(
            "rl.py", "rl_smoke.yaml", "--model", final, "--train_data", beir, "--eval_data", beir,
            "--output_dir", folder / "rl", "--max_steps", "2", "--max_completion_length", "33",
            "--train_queries", "8", "--corpus_size", "100", "--eval_documents", "100", *gpu,
        )  # fmt: skip
        rl = json.loads((folder / "rl" / "final" / "training_record.json").read_text())
        report["grpo_completions_per_s"] = rl["completions_per_second"]
        report["grpo_peak_gib"] = rl["peak_memory_per_rank"][0]["gib"]
        trained = SentenceTransformer(str(final), trust_remote_code=True, device=args.device)
        before = trained.encode_document(documents[:16])
        trained.save(str(folder / "saved"))
        after = SentenceTransformer(str(folder / "saved"), trust_remote_code=True, device=args.device)
        report["save_load_min_cos"] = float(cosines(before, after.encode_document(documents[:16])).min())

    for key, value in report.items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
