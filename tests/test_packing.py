from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from st_search_r3.embedding import common_prefix_length, final_hidden_states
from st_search_r3.packing import (
    PACKED_ATTENTION,
    cpu_matmul_precision,
    enable_packing,
    packed_last_hidden_states,
)


def test_the_module_switches_its_model_to_packed_attention(tiny_model):
    module = tiny_model[0]
    assert module.packs
    assert module.auto_model.config._attn_implementation == PACKED_ATTENTION


@pytest.mark.parametrize(("prefix", "round_tokens_to"), [("template", 1), ("none", 1), ("template", 64)])
def test_packed_states_equal_the_padded_pass(tiny_model, texts, prefix, round_tokens_to):
    module = tiny_model[0]
    # Texts of different lengths, two of them the same length, so both attention groupings are exercised.
    documents = texts["documents"] + [texts["documents"][0]]
    features = module.preprocess(documents, task="document")
    ids, mask = features["input_ids"], features["attention_mask"]
    assert len(set(mask.sum(dim=1).tolist())) > 2
    prefix_length = 0 if prefix == "none" else common_prefix_length(ids, mask)
    with torch.no_grad():
        padded = final_hidden_states(module.auto_model, ids, mask)[:, -1]
        with cpu_matmul_precision("float32"):
            packed = packed_last_hidden_states(module.auto_model, ids, mask, prefix_length, round_tokens_to)
    torch.testing.assert_close(packed, padded, rtol=1e-4, atol=1e-5)


def test_packed_states_under_bf16_autocast_match_the_padded_pass(tiny_model, texts):
    """Under autocast the products come out in bfloat16 while the queries stay float32: the packed output must take
    the products' dtype (it used to fail there), and agree with the padded pass to bfloat16's precision."""
    module = tiny_model[0]
    features = module.preprocess(texts["documents"], task="document")
    ids, mask = features["input_ids"], features["attention_mask"]
    prefix_length = common_prefix_length(ids, mask)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        padded = final_hidden_states(module.auto_model, ids, mask)[:, -1]
        packed = packed_last_hidden_states(module.auto_model, ids, mask, prefix_length, 1)
    assert packed.dtype == padded.dtype
    torch.testing.assert_close(packed.float(), padded.float(), rtol=0.05, atol=0.05)


def test_encoding_packs_only_without_gradients(tiny_model, texts):
    """Training needs the differentiable padded path; inference takes the packed one, and both agree."""
    module = tiny_model[0]
    features = module.preprocess(texts["documents"], task="document")
    with torch.enable_grad():
        trained = module({**features})["sentence_embedding"]
    assert trained.requires_grad
    module.matmul_precision = "float32"
    try:
        with torch.no_grad():
            inferred = module({**features})["sentence_embedding"]
    finally:
        module.matmul_precision = "bfloat16"
    torch.testing.assert_close(inferred, trained.detach(), rtol=1e-4, atol=1e-5)


def test_generation_still_runs_on_plain_sdpa(tiny_model, texts):
    """Reasoning calls carry no packed lengths: the packed implementation must behave as SDPA for them."""
    module = tiny_model[0]
    module.forget_reasoning()
    packed_traces = module.reasoning_traces(texts["queries"][:3])
    module.auto_model.set_attn_implementation("sdpa")
    try:
        module.forget_reasoning()
        assert module.reasoning_traces(texts["queries"][:3]) == packed_traces
    finally:
        module.auto_model.set_attn_implementation(PACKED_ATTENTION)
        module.forget_reasoning()


@pytest.mark.parametrize(
    "overrides",
    [{"layer_types": ["sliding_attention", "full_attention"], "sliding_window": 4}, {"attn_implementation": "eager"}],
    ids=["sliding-window", "eager"],
)
def test_models_packing_cannot_reproduce_keep_their_attention(overrides):
    attn = overrides.pop("attn_implementation", "sdpa")
    config = LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        **overrides,
    )
    model = LlamaForCausalLM(config)
    model.set_attn_implementation(attn)
    assert not enable_packing(model)
    assert model.config._attn_implementation == attn


def test_cpu_matmul_precision_restores_the_flag_and_rejects_unknown_values():
    before = torch.backends.mkldnn.matmul.fp32_precision
    with cpu_matmul_precision("bfloat16"):
        assert torch.backends.mkldnn.matmul.fp32_precision == "bf16"
    assert torch.backends.mkldnn.matmul.fp32_precision == before
    with pytest.raises(RuntimeError), cpu_matmul_precision("bfloat16"):
        raise RuntimeError("boom")
    assert torch.backends.mkldnn.matmul.fp32_precision == before
    with pytest.raises(ValueError, match="float32"), cpu_matmul_precision("fp8"):
        pass
