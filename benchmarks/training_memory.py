"""Peak memory and throughput of stage-1 training steps, with and without gradient checkpointing.

    python benchmarks/training_memory.py                       # the default 135M model, batch 16 (the CPU recipe)
    python benchmarks/training_memory.py --batch-sizes 16 64 --document-tokens 64 256

Each setting runs ``train/sft.py`` for a few steps in a process of its own, on the WordNet sample that ships in
the package (as ``benchmarks/gpu_smoke.py`` writes it), and reads the training record: the peak memory (on a GPU,
what PyTorch allocated; on a CPU, the process's peak resident set, Python runtime included) and pairs/s.
Writes ``benchmarks/results/training_memory.json``; docs/training.md's memory table cites it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(Path(__file__).parent))
from finetune_minilm import machine  # noqa: E402
from gpu_smoke import write_data  # noqa: E402


def run(triplets: Path, folder: Path, batch: int, document_tokens: int, checkpointing: bool, steps: int) -> dict:
    device = ["--use_cpu", "false", "--bf16", "true"] if torch.cuda.is_available() else ["--use_cpu", "true"]
    command = [
        sys.executable, str(ROOT / "train" / "sft.py"), "--train_data", str(triplets), "--output_dir", str(folder),
        "--max_steps", str(steps), "--per_device_train_batch_size", str(batch), "--max_train_pairs", str(batch * steps),
        "--max_document_tokens", str(document_tokens), "--activation_checkpointing", str(checkpointing).lower(),
        "--save_strategy", "no", "--logging_steps", "1", *device,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"train/sft.py failed:\n{result.stderr[-4000:]}")
    record = json.loads((folder / "final" / "training_record.json").read_text())
    return {
        "batch": batch,
        "document_tokens": document_tokens,
        "gradient_checkpointing": checkpointing,
        "peak_gib": round(record["peak_memory_per_rank"][0]["gib"], 3),
        "memory_of": record["peak_memory_per_rank"][0]["device"],
        "pairs_per_second": round(record["pairs_per_second"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16])
    parser.add_argument("--document-tokens", type=int, nargs="+", default=[64])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "training_memory.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        triplets, _ = write_data(Path(folder))
        for batch in args.batch_sizes:
            for tokens in args.document_tokens:
                for checkpointing in (False, True):
                    out = Path(folder) / f"run-{batch}-{tokens}-{checkpointing}"
                    rows.append(run(triplets, out, batch, tokens, checkpointing, args.steps))
                    print(json.dumps(rows[-1]), flush=True)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else machine()
    report = {"command": " ".join(["python", *sys.argv]), "machine": device, "model": "SmolLM2-135M-Instruct",
              "data": "the packaged WordNet sample (40 triplets)", "rows": rows}  # fmt: skip
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
