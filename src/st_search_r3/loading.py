"""Loading the causal LM behind a :class:`~st_search_r3.module.SearchR3` module: a base model, or a folder
that holds a LoRA adapter trained on one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from st_search_r3.base_model import resolve_base_model
from st_search_r3.prompting import add_embed_token


def load_llm(
    model_name_or_path: str,
    model_kwargs: dict[str, Any] | None = None,
    processor_kwargs: dict[str, Any] | None = None,
) -> tuple[PreTrainedTokenizerBase, PreTrainedModel, int]:
    """The tokenizer (left padding, a pad token, ``<|embed_token|>`` added), the LLM and the token's id.

    Args:
        model_name_or_path: ``"SmolLM2-135M-Instruct"`` (the packaged default), a folder or a hub id of a causal
            LM, or a folder saved while training with LoRA: it holds the adapter only, so its base is built
            first (its vocabulary grown by the embed token) and the adapter goes on top.
        model_kwargs: Passed to ``AutoModelForCausalLM.from_pretrained`` (hub arguments such as ``token``,
            ``cache_dir``, ``local_files_only`` included); an adapter's base is loaded at the ``revision`` its
            ``adapter_config.json`` names, if any.
        processor_kwargs: Passed to ``AutoTokenizer.from_pretrained``.
    """
    path = resolve_base_model(model_name_or_path)
    adapter = Path(path) / "adapter_config.json"
    model_kwargs = dict(model_kwargs or {})
    base = path
    if adapter.is_file():
        adapter_config = json.loads(adapter.read_text())
        base = resolve_base_model(adapter_config["base_model_name_or_path"])
        if adapter_config.get("revision"):
            model_kwargs.setdefault("revision", adapter_config["revision"])
    tokenizer = AutoTokenizer.from_pretrained(path, **(processor_kwargs or {}))
    model = AutoModelForCausalLM.from_pretrained(base, **model_kwargs)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    embed_token_id = add_embed_token(tokenizer, model)
    if adapter.is_file():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, path)
    return tokenizer, model, embed_token_id
