"""st_search_r3.loading: an adapter folder's base comes from the hub with the caller's hub arguments."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

import st_search_r3.loading as loading
from st_search_r3 import SearchR3

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_base(tiny_llm, tmp_path):
    """A hub-layout cache holding the tiny LLM as ``fake-org/tiny-base`` at ``COMMIT``, and an adapter folder
    trained on it that names that repository and revision."""
    from peft import LoraConfig, get_peft_model

    cache = tmp_path / "cache"
    repo = cache / "models--fake-org--tiny-base"
    shutil.copytree(tiny_llm, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    module = SearchR3(tiny_llm, max_seq_length=256, max_reasoning_tokens=8)
    module.auto_model = get_peft_model(module.auto_model, LoraConfig(r=2, target_modules="all-linear"))
    config = module.auto_model.peft_config["default"]
    config.base_model_name_or_path, config.revision = "fake-org/tiny-base", COMMIT
    SentenceTransformer(modules=[module]).save(str(tmp_path / "adapter"))
    expected = SentenceTransformer(modules=[module]).encode_document(["a wild cat"])
    return cache, tmp_path / "adapter", expected


def test_an_adapters_base_loads_with_the_callers_token_cache_and_offline_setting(hub_base, monkeypatch):
    cache, adapter, expected = hub_base
    calls = []

    class Spy:
        @staticmethod
        def from_pretrained(name, **kwargs):
            calls.append((name, kwargs))
            return loading_auto.from_pretrained(name, **kwargs)

    loading_auto = loading.AutoModelForCausalLM
    monkeypatch.setattr(loading, "AutoModelForCausalLM", Spy)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    module = SearchR3.load(str(adapter), token="hf_fake_token", cache_folder=str(cache), local_files_only=True)
    ((name, kwargs),) = calls
    assert name == "fake-org/tiny-base"
    assert kwargs["token"] == "hf_fake_token" and kwargs["cache_dir"] == str(cache) and kwargs["local_files_only"]
    assert kwargs["revision"] == COMMIT, "the revision the adapter was trained on"
    vectors = SentenceTransformer(modules=[module]).encode_document(["a wild cat"])
    np.testing.assert_allclose(vectors, expected, rtol=1e-5, atol=1e-6)


def test_without_the_cache_folder_the_base_is_not_found(hub_base, monkeypatch):
    cache, adapter, _ = hub_base
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache.parent / "elsewhere"))
    with pytest.raises(OSError):
        SearchR3.load(str(adapter), local_files_only=True)


def test_sentence_transformer_passes_its_hub_arguments_on(hub_base, monkeypatch):
    cache, adapter, expected = hub_base
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = SentenceTransformer(
        str(adapter), cache_folder=str(cache), local_files_only=True, token="hf_fake_token", trust_remote_code=True
    )
    np.testing.assert_allclose(model.encode_document(["a wild cat"]), expected, rtol=1e-5, atol=1e-6)
