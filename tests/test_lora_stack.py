from __future__ import annotations

import json

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from st_search_r3.training.lora_stack import stack_lora_adapters


def trained_adapter(model, folder, seed: int, **lora) -> tuple[dict, dict]:
    """A LoRA with random (non-zero) weights on ``model``, saved to ``folder``; returns tensors and config."""
    peft_model = get_peft_model(model, LoraConfig(target_modules="all-linear", **lora))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_" in name or "trainable_tokens" in name:
                parameter.copy_(0.05 * torch.randn(parameter.shape, generator=generator))
    peft_model.save_pretrained(folder)
    return (
        peft_model,
        load_file(f"{folder}/adapter_model.safetensors"),
        json.loads((folder / "adapter_config.json").read_text()),
    )


def test_stacked_adapter_equals_the_two_applied_in_turn(tiny_llm, tmp_path):
    ids = torch.tensor([[5, 17, 42, 99, 3, 64]])
    base = AutoModelForCausalLM.from_pretrained(tiny_llm)
    first, first_tensors, first_config = trained_adapter(
        base, tmp_path / "first", 0, r=4, lora_alpha=8, trainable_token_indices={"embed_tokens": [7]}
    )
    merged = first.merge_and_unload()
    second, second_tensors, second_config = trained_adapter(merged, tmp_path / "second", 1, r=2, lora_alpha=16)
    with torch.no_grad():
        expected = second(input_ids=ids).logits

    tensors, config = stack_lora_adapters(first_tensors, first_config, second_tensors, second_config)
    assert config["r"] == 6 and config["trainable_token_indices"] == {"embed_tokens": [7]}
    stacked = tmp_path / "stacked"
    stacked.mkdir()
    save_file(tensors, stacked / "adapter_model.safetensors")
    (stacked / "adapter_config.json").write_text(json.dumps(config))
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llm), stacked)
    with torch.no_grad():
        actual = model(input_ids=ids).logits
    assert not torch.allclose(expected, AutoModelForCausalLM.from_pretrained(tiny_llm)(input_ids=ids).logits)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-4)


def test_stacking_refuses_adapters_on_different_modules_or_scalings():
    config = {"peft_type": "LORA", "r": 2, "lora_alpha": 4}
    a = {"m.q_proj.lora_A.weight": torch.zeros(2, 8), "m.q_proj.lora_B.weight": torch.zeros(8, 2)}
    b = {"m.v_proj.lora_A.weight": torch.zeros(2, 8), "m.v_proj.lora_B.weight": torch.zeros(8, 2)}
    with pytest.raises(ValueError, match="different modules"):
        stack_lora_adapters(a, config, b, config)
    with pytest.raises(ValueError, match="use_rslora"):
        stack_lora_adapters(a, config, a, dict(config, use_rslora=True))
    with pytest.raises(ValueError, match="more than LoRA"):
        stack_lora_adapters(a, config, dict(a, **{"m.embed_tokens.token_adapter.trainable_tokens_delta": 0}), config)
