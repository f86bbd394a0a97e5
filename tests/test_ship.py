from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
from huggingface_hub import constants
from safetensors.torch import load_file, save_file
from sentence_transformers import SentenceTransformer

from st_search_r3.install import install
from tests.test_rl import run_rl
from tests.test_sft import run_sft


def ship(*arguments) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "st_search_r3.cli", "ship", *map(str, arguments)]
    return subprocess.run(command, capture_output=True, text=True)


@pytest.mark.slow
def test_stage2_adapter_ships_stacked_on_stage1_and_installs_to_the_rl_model(
    tiny_llm, tiny_data, tmp_path, monkeypatch
):
    """SFT -> ship -> install -> RL on the installed model -> ship stacked -> install: the RL model's vectors."""
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert run_sft(tiny_llm, tiny_data, tmp_path / "sft").returncode == 0
    assert ship(tmp_path / "sft" / "final", "--output", tmp_path / "stage1").returncode == 0
    stage1_model = install(weights=tmp_path / "stage1")

    # The tiny SFT model reasons for 4 tokens at most: completions are 4 + the embed token.
    rl = run_rl(stage1_model, tiny_data, tmp_path / "rl", "--max_completion_length", "5")
    assert rl.returncode == 0, rl.stderr[-3000:]
    # Two tiny steps may move nothing (equal rewards in a group give no gradient): give the RL adapter
    # weights that do, so the comparison below checks the stacking, not the luck of the smoke run.
    adapter = tmp_path / "rl" / "final" / "adapter_model.safetensors"
    generator = torch.Generator().manual_seed(0)
    tensors = {k: 0.05 * torch.randn(v.shape, generator=generator) for k, v in load_file(adapter).items()}
    save_file(tensors, adapter)
    shipping = ship(tmp_path / "rl" / "final", "--stacked-on", tmp_path / "stage1", "--output", tmp_path / "stage2")
    assert shipping.returncode == 0, shipping.stderr[-3000:]
    shipped = tmp_path / "stage2"
    assert json.loads((shipped / "adapter_config.json").read_text())["r"] == 4 + 16
    assert (shipped / "training_record.json").is_file() and (shipped / "rl_training_record.json").is_file()

    installed = install(weights=shipped)
    assert installed != stage1_model and "stage 2 (GRPO" in (installed / "README.md").read_text()
    texts = ["a wild cat", "a sponge that lives in the sea"]
    expected = SentenceTransformer(str(tmp_path / "rl" / "final"), trust_remote_code=True)
    actual = SentenceTransformer(str(installed), trust_remote_code=True)
    before = SentenceTransformer(str(stage1_model), trust_remote_code=True)
    for encode in ("encode_document", "encode_query"):
        kwargs = {"reasoning": False} if encode == "encode_query" else {}
        want, got = getattr(expected, encode)(texts, **kwargs), getattr(actual, encode)(texts, **kwargs)
        # Equal up to the bfloat16 rounding of the shipped RL adapter.
        assert (want * got).sum(axis=1).min() > 0.9999
        assert (getattr(before, encode)(texts, **kwargs) * want).sum(axis=1).max() < 0.999, "RL changed nothing"

    # An adapter not trained on the model installed from stage1 (here stage 1 itself) is refused.
    refused = ship(tmp_path / "sft" / "final", "--stacked-on", tmp_path / "stage1", "--output", tmp_path / "other")
    assert refused.returncode != 0 and "not on the model installed from" in refused.stderr
    assert not (tmp_path / "other").exists()


def test_a_stop_head_ships_beside_the_adapter_it_was_fitted_on(tmp_path):
    """`ship --stop-head`: the head and its record join the shipped adapter, everything else stays, and the head
    of another adapter is refused. The shipped default reasoning setting is not changed."""
    from st_search_r3.model_card import SHIPPED_WEIGHTS
    from st_search_r3.stop_head import STOP_HEAD_FILE

    shipped = tmp_path / "weights"
    shutil.copytree(SHIPPED_WEIGHTS, shipped)
    for name in (STOP_HEAD_FILE, "stop_record.json"):  # an adapter shipped without a head
        (shipped / name).unlink(missing_ok=True)
    before = {path.name: path.read_bytes() for path in shipped.iterdir()}
    stop_run = tmp_path / "stop" / "final"
    shutil.copytree(SHIPPED_WEIGHTS, stop_run)
    save_file({"weight": torch.zeros(576), "bias": torch.zeros(1)}, stop_run / STOP_HEAD_FILE)
    (stop_run / "stop_record.json").write_text('{"chosen_l2": 0.1}')
    settings = json.loads((stop_run / "search_r3_config.json").read_text())
    (stop_run / "search_r3_config.json").write_text(json.dumps({**settings, "reasoning": "auto"}))

    result = ship("--stop-head", stop_run, "--output", shipped)
    assert result.returncode == 0, result.stderr[-3000:]
    after = {path.name: path.read_bytes() for path in shipped.iterdir()}
    assert set(after) == set(before) | {STOP_HEAD_FILE, "stop_record.json"}
    assert all(after[name] == content for name, content in before.items()), "the adapter and settings stay"
    assert after[STOP_HEAD_FILE] == (stop_run / STOP_HEAD_FILE).read_bytes()

    other = load_file(stop_run / "adapter_model.safetensors")
    save_file({k: v + 1 for k, v in other.items()}, stop_run / "adapter_model.safetensors")
    refused = ship("--stop-head", stop_run, "--output", shipped)
    assert refused.returncode != 0 and "fitted on another adapter" in refused.stderr
    assert ship("--output", shipped).returncode != 0, "nothing to ship"
