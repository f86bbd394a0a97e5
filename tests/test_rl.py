from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from sentence_transformers import SentenceTransformer

ROOT = Path(__file__).parent.parent


def run_rl(model_folder, data, output, *extra):
    command = [
        sys.executable,
        str(ROOT / "train/rl.py"),
        "--config",
        str(ROOT / "train/configs/rl_smoke.yaml"),
        "--model",
        str(model_folder),
        "--data_dir",
        str(data),
        "--output_dir",
        str(output),
        *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT)


def test_smoke_config_runs_two_grpo_steps_with_the_cached_corpus(tiny_model, tiny_data, tmp_path):
    tiny_model.save(str(tmp_path / "search-r3"))
    result = run_rl(tmp_path / "search-r3", tiny_data, tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]

    final = tmp_path / "run" / "final"
    assert (final / "adapter_model.safetensors").is_file()
    record = json.loads((final / "training_record.json").read_text())
    assert record["steps"] == 2
    logged = {key for row in record["log_history"] for key in row}
    assert {"rewards/ranking_reward/mean", "rewards/format_reward/mean", "corpus/drift", "dev_ndcg@10"} <= logged
    assert (tmp_path / "run" / "curves.png").is_file()
    # Every checkpoint carries the corpus cache; resuming loads it instead of re-encoding everything.
    cache = tmp_path / "run" / "checkpoint-2" / "corpus_index"
    assert (cache / "vectors.npy").is_file() and json.loads((cache / "state.json").read_text())["last_step"] >= 1

    trained = SentenceTransformer(str(final), trust_remote_code=True)
    embeddings = trained.encode_query(["a wild cat"], reasoning=False)
    assert embeddings.shape == (1, 64) and np.isfinite(embeddings).all()

    resumed = run_rl(tmp_path / "search-r3", tiny_data, tmp_path / "run", "--resume", "true", "--max_steps", "3")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Loaded the corpus cache of" in resumed.stderr and "checkpoint-2" in resumed.stderr
    assert "Encoding the whole corpus" not in resumed.stderr
    assert json.loads((final / "training_record.json").read_text())["steps"] == 3
