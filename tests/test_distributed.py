"""Both trainers on 2 CPU processes (torchrun, gloo): one trained model, the same on every rank."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from st_search_r3 import SearchR3
from st_search_r3.training.checkpoints import digest
from tests.conftest import ROOT


def torchrun(script: str, config: str, *arguments) -> subprocess.CompletedProcess:
    """``ACCELERATE_USE_CPU=1 torchrun --standalone --nproc_per_node=2 train/SCRIPT --config ...`` (accelerate 1.15's
    own launcher starts several CPU processes only through MPI)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += [str(ROOT / "train" / script), "--config", str(ROOT / "train" / "configs" / config)]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([*command, *map(str, arguments)], capture_output=True, text=True, cwd=ROOT, env=env)


def test_digest_tells_arrays_apart():
    assert digest(np.zeros(3)) == digest(np.zeros(3)) != digest(np.ones(3))


@pytest.mark.slow
def test_sft_on_two_processes_trains_one_model(tiny_llm, tiny_data, tmp_path):
    result = torchrun(
        "sft.py", "sft_smoke.yaml", "--base_model", tiny_llm, "--data_dir", tiny_data,
        "--output_dir", tmp_path, "--save_steps", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    record = json.loads((tmp_path / "final" / "training_record.json").read_text())
    (first, second) = record["weights_sha256_per_rank"]
    assert first == second, "data parallel: every rank holds the same weights"
    losses = [row["loss"] for row in record["log_history"] if "loss" in row]
    assert record["steps"] == 2 and losses and np.isfinite(losses).all()
    assert sorted(path.name for path in tmp_path.glob("checkpoint-*")) == ["checkpoint-2"]
    assert record["pairs_this_run"] == 16, "2 steps x 4 triplets x 2 processes"


@pytest.mark.slow
def test_grpo_on_two_processes_keeps_one_corpus_index(tiny_llm, tiny_data, tmp_path):
    model = SentenceTransformer(modules=[SearchR3(tiny_llm, max_reasoning_tokens=8, max_seq_length=192)])
    model.save(str(tmp_path / "model"))
    result = torchrun(
        "rl.py", "rl_smoke.yaml", "--model", tmp_path / "model", "--data_dir", tiny_data,
        "--output_dir", tmp_path / "run", "--save_steps", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    record = json.loads((tmp_path / "run" / "final" / "training_record.json").read_text())
    assert len(set(record["weights_sha256_per_rank"])) == 1 and len(record["weights_sha256_per_rank"]) == 2
    assert len(set(record["corpus_sha256_per_rank"])) == 1, "every rank ranks against the same cached vectors"
    refreshes = [row["step"] for row in record["log_history"] if "corpus/refreshed" in row]
    assert refreshes and len(refreshes) == len(set(refreshes)), "one corpus refresh per step"
    losses = [row["loss"] for row in record["log_history"] if "loss" in row]
    assert np.isfinite(losses).all() and record["steps"] == 2
    assert sorted(path.name for path in (tmp_path / "run").glob("checkpoint-*")) == ["checkpoint-2"]
    assert (tmp_path / "run" / "checkpoint-2" / "corpus_index" / "vectors.npy").is_file()
