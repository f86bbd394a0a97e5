"""One LoRA adapter equal to two applied in turn (stage 2's adapter on top of merged stage 1).

Stage 2 trains a LoRA on the *merged* stage-1 model, so the weights it gives are
``W + s1 B1 A1 + s2 B2 A2``: exactly a LoRA of rank ``r1 + r2`` with ``A = [A1; A2]`` and
``B = [s1 B1, s2 B2] / s`` (``s`` the stacked scale). The package can then keep shipping one adapter on the
base model, and ``st-search-r3 install`` merges it as before.

PEFT's ``add_weighted_adapter(combination_type="cat")`` computes the same for plain LoRAs (measured on the tiny
test model: 4.5e-7 largest logit difference), but PEFT 0.21.2 cannot load a second adapter next to one with
``trainable_token_indices`` (``KeyError: ...token_adapter.trainable_tokens_delta``), and ours always trains
the ``<|embed_token|>`` row that way.
"""

from __future__ import annotations

import torch

UNSUPPORTED = ("use_rslora", "use_dora", "alpha_pattern", "rank_pattern", "modules_to_save")


def stack_lora_adapters(
    first: dict[str, torch.Tensor], first_config: dict, second: dict[str, torch.Tensor], second_config: dict
) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors and ``adapter_config.json`` of one adapter equal to ``first`` merged, then ``second``.

    Args:
        first, first_config: The stage-1 adapter (its tensors and config); its base model is the result's.
            Its ``trainable_token_indices`` rows (the embed token) are kept as they are.
        second, second_config: An adapter trained on ``first`` merged into the base, on the same modules.

    Raises:
        ValueError: The adapters target different modules, ``second`` trains token rows, or either uses a
            PEFT feature that changes the scaling (rsLoRA, DoRA, per-module ranks or alphas).
    """
    for name, config in (("first", first_config), ("second", second_config)):
        used = [key for key in UNSUPPORTED if config.get(key)]
        if used or config.get("peft_type") != "LORA":
            raise ValueError(f"the {name} adapter must be a plain LoRA; it uses {used or config.get('peft_type')}")
    first_lora = {k: v for k, v in first.items() if ".lora_" in k}
    second_lora = {k: v for k, v in second.items() if ".lora_" in k}
    if set(first_lora) != set(second_lora):
        raise ValueError(f"the adapters train different modules: {sorted(set(first_lora) ^ set(second_lora))[:4]}")
    if len(second_lora) != len(second):
        raise ValueError(f"the second adapter trains more than LoRA weights: {sorted(set(second) - set(second_lora))}")
    first_scale = first_config["lora_alpha"] / first_config["r"]
    second_scale = second_config["lora_alpha"] / second_config["r"]
    rank = first_config["r"] + second_config["r"]
    # alpha = rank gives the stacked adapter a scale of 1, so each half's B carries its own scale.
    tensors = {k: v for k, v in first.items() if ".lora_" not in k}
    for key, tensor in first_lora.items():
        if ".lora_A." in key:
            tensors[key] = torch.cat([tensor, second_lora[key].to(tensor.dtype)], dim=0)
        else:
            parts = [tensor.float() * first_scale, second_lora[key].float() * second_scale]
            tensors[key] = torch.cat(parts, dim=1).to(tensor.dtype)
    config = dict(first_config, r=rank, lora_alpha=rank)
    return tensors, config
