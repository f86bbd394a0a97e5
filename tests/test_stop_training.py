from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from st_search_r3 import SearchR3
from st_search_r3.install import install
from st_search_r3.stop_head import STOP_HEAD_FILE, StopHead
from st_search_r3.training.config import SearchR3StopConfig
from st_search_r3.training.stop_training import (
    StopExamples,
    cut_after_sentences,
    decisions,
    fit_stop_head,
    stop_examples,
    stop_loss,
)
from tests.conftest import run_train_script


def test_cut_after_sentences(tiny_model):
    tokenizer = tiny_model[0].tokenizer
    ids = tokenizer.encode("a wild cat. a large dog. 1. a third one", add_special_tokens=False)
    cut, ended = cut_after_sentences(ids, tokenizer, 1)
    assert ended and tokenizer.decode(cut).strip() == "a wild cat."
    cut, ended = cut_after_sentences(ids, tokenizer, 2)
    assert ended and tokenizer.decode(cut).strip() == "a wild cat. a large dog."
    cut, ended = cut_after_sentences(ids, tokenizer, 3)  # "1. " is a list number, not a sentence's end
    assert not ended and cut == ids


def synthetic_examples(count: int, seed: int = 0) -> list[StopExamples]:
    """Reasoning pays exactly where the first feature is positive; every reasoning is 3 tokens."""
    generator = torch.Generator().manual_seed(seed)
    examples = []
    for _ in range(count):
        hidden = torch.randn(4, 8, generator=generator)
        hidden[1:, 0] = 1.0  # inside a reasoning the first feature says "go on"
        hidden[:, 1] = torch.tensor([-1.0, -1.0, -1.0, 1.0])  # the second one marks the reasoning's end
        gain = 0.3 if hidden[0, 0] > 0 else -0.2
        examples.append(StopExamples(hidden, torch.full((4,), -0.5), True, gain))
    return examples


def test_fit_learns_when_reasoning_pays_and_where_it_ends():
    examples = synthetic_examples(200)
    start = StopHead(torch.zeros(8), bias=0.0)
    before = decisions(start, examples)
    fitted = fit_stop_head(start, examples, l2=1e-4)
    assert stop_loss(fitted, examples) < stop_loss(start, examples)
    held_out = decisions(fitted, synthetic_examples(100, seed=1))
    assert held_out["gain_taken"] > 0.9 * held_out["gain_possible"] > 0
    assert held_out["stops_at_cut"] > 0.9
    assert before["gain_taken"] < held_out["gain_taken"]


def test_examples_hold_each_reasoning_step(tiny_model, texts):
    module = tiny_model[0]
    documents = tiny_model.encode_document(texts["documents"], normalize_embeddings=True)
    examples = stop_examples(module, texts["queries"], documents, [[i] for i in range(6)], token_cost=0.0)
    assert len(examples) == 6
    traces = module.reasoning_traces(texts["queries"], reasoning=True)
    for example, trace in zip(examples, traces):
        steps = len(example.hidden)
        assert 2 <= steps <= len(trace.token_ids) + 1 and example.hidden.shape[1] == 64
        assert example.other_max.shape == (steps,) and torch.isfinite(example.other_max).all()
        assert -1.0 <= example.gain <= 1.0


def test_held_out_sources_are_refused():
    with pytest.raises(ValueError, match="held out"):
        SearchR3StopConfig(sources=["wordnet", "vimfaq"])


def tiny_adapter(tiny_llm, folder) -> str:
    from peft import LoraConfig, get_peft_model

    module = SearchR3(tiny_llm, max_reasoning_tokens=8, max_seq_length=192, reasoning=False)
    row = {"embed_tokens": [module.embed_token_id]}
    lora = LoraConfig(r=2, target_modules="all-linear", trainable_token_indices=row)
    module.auto_model = get_peft_model(module.auto_model, lora)
    SentenceTransformer(modules=[module]).save(str(folder))  # as train/sft.py saves its final model
    return str(folder)


@pytest.mark.slow
def test_stop_script_writes_a_model_that_decides_and_installs(tiny_llm, tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    adapter = tiny_adapter(tiny_llm, tmp_path / "adapter")
    arguments = ["--model", adapter, "--data_dir", tiny_data, "--sources", "wordnet", "--output_dir", tmp_path / "run"]
    arguments += ["--queries_per_source", 8, "--documents_per_source", 30, "--max_reasoning_tokens", 8]
    result = run_train_script("stop.py", "stop.yaml", *arguments)
    assert result.returncode == 0, result.stderr[-3000:]
    final = tmp_path / "run" / "final"
    assert (final / STOP_HEAD_FILE).is_file() and (final / "adapter_model.safetensors").is_file()
    assert json.loads((final / "search_r3_config.json").read_text())["reasoning"] == "auto"
    record = json.loads((final / "stop_record.json").read_text())
    assert record["training_queries"] == {"wordnet": 8}
    assert set(record["held_out_choice"]) == {"0.001", "0.01", "0.1", "1.0"}
    assert (tmp_path / "run" / "examples" / "wordnet.pt").is_file()

    model = SentenceTransformer(str(final), trust_remote_code=True)
    assert model[0].reasoning == "auto" and model[0].stop_head is not None
    assert np.isfinite(model.encode_query(["a wild cat"])).all()

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    installed = SentenceTransformer(str(install(weights=final, make_default=False)), trust_remote_code=True)
    torch.testing.assert_close(installed[0].stop_head.weight, model[0].stop_head.weight)

    again = run_train_script("stop.py", "stop.yaml", *arguments)  # the examples are read back, not collected
    assert again.returncode == 0 and "training queries" not in again.stderr
