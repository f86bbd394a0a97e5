"""Any causal LM: the whole path on tiny random models of several architectures, tied and untied embeddings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from huggingface_hub import constants
from sentence_transformers import SentenceTransformer

from st_search_r3 import SearchR3
from tests.conftest import build_tiny_llm, run_train_script

ARCHITECTURES = [("llama", True), ("qwen2", False), ("gemma", True), ("phi3", False), ("gemma2", True)]
IDS = [f"{name}-{'tied' if tied else 'untied'}" for name, tied in ARCHITECTURES]


@pytest.fixture(scope="module", params=ARCHITECTURES, ids=IDS)
def llm(request, tmp_path_factory) -> str:
    name, tied = request.param
    return build_tiny_llm(str(tmp_path_factory.mktemp(name)), architecture=name, tied=tied)


def cosines(a, b) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_encode_batched_equals_one_by_one_and_survives_save_load(llm, texts, tmp_path):
    model = SentenceTransformer(modules=[SearchR3(llm, max_reasoning_tokens=6, max_seq_length=256)])
    for encode, items in ((model.encode_document, texts["documents"]), (model.encode_query, texts["queries"])):
        batched = encode(items, batch_size=len(items))
        single = np.stack([encode([item])[0] for item in items])
        assert np.isfinite(batched).all() and cosines(batched, single).min() > 0.9999
    model.save(str(tmp_path / "saved"))
    loaded = SentenceTransformer(str(tmp_path / "saved"), trust_remote_code=True)
    np.testing.assert_allclose(
        loaded.encode_document(texts["documents"]), model.encode_document(texts["documents"]), atol=1e-6
    )


@pytest.mark.slow
def test_one_sft_step_one_grpo_step_and_install(llm, tiny_data, texts, tmp_path, monkeypatch):
    sft = run_train_script(
        "sft.py", "sft_smoke.yaml", "--base_model", llm, "--data_dir", tiny_data, "--output_dir", tmp_path / "sft",
        "--max_steps", "1", "--eval_strategy", "no", "--reasoning_queries", "2",
    )  # fmt: skip
    assert sft.returncode == 0, sft.stderr[-3000:]
    final = tmp_path / "sft" / "final"
    assert json.loads((final / "training_record.json").read_text())["steps"] == 1

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    from st_search_r3.install import install

    installed = install(weights=final)  # the adapter merged into its base
    merged = SentenceTransformer(str(installed), trust_remote_code=True)
    trained = SentenceTransformer(str(final), trust_remote_code=True)
    for model in (merged, trained):
        model[0].matmul_precision = "float32"
    assert (
        cosines(merged.encode_document(texts["documents"]), trained.encode_document(texts["documents"])).min() > 0.9999
    )

    grpo = run_train_script(
        "rl.py", "rl_smoke.yaml", "--model", installed, "--data_dir", tiny_data, "--output_dir", tmp_path / "rl",
        "--max_steps", "1", "--max_completion_length", "5",
    )  # fmt: skip
    assert grpo.returncode == 0, grpo.stderr[-3000:]
    assert json.loads((tmp_path / "rl" / "final" / "training_record.json").read_text())["steps"] == 1


def test_install_builds_on_any_base_model(llm, texts, tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    from st_search_r3.install import install

    folder = install(base_model=llm)
    model = SentenceTransformer(str(folder), trust_remote_code=True)
    direct = SentenceTransformer(modules=[SearchR3(llm, **json.loads((folder / "search_r3_config.json").read_text()))])
    np.testing.assert_allclose(
        model.encode_document(texts["documents"]), direct.encode_document(texts["documents"]), atol=1e-6
    )
