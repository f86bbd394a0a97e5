"""The reader: a LoRA adapter of its own, on while the model reads a query's passages and off otherwise.

Documents and direct query vectors must not change when a reader is added (an index built before stays valid),
so the reader's LoRA layers are injected into the LLM (PEFT's ``inject_adapter_in_model``) and switched on only
for read prompts. Switched off, a LoRA layer computes exactly its base layer: every other vector is the same, bit
for bit. The adapter is saved in the model folder's ``reader/`` (``adapter_config.json`` and
``adapter_model.safetensors``, a few MB); the LLM's own weights are saved without it.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file, save

from st_search_r3.atomic import write_file

if TYPE_CHECKING:  # PEFT is imported when a reader is made: encoding a model without one never needs it
    from peft import LoraConfig

ADAPTER_NAME = "reader"
FOLDER = "reader"
CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"


class Reader:
    """The reader's LoRA inside ``model`` (injected on construction, off until :meth:`active`).

    Args:
        model: The causal LM (not a ``PeftModel``: merge a training adapter first).
        config: The LoRA's settings.
        state: Adapter weights as :meth:`state_dict` returns them; freshly initialised when ``None`` (training).
        trainable: Keep the reader's weights trainable while it is off too (PEFT freezes a switched-off adapter),
            so that a backward pass after the read forward still reaches them.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        config: LoraConfig,
        state: dict[str, torch.Tensor] | None = None,
        trainable: bool = False,
    ):
        from peft import inject_adapter_in_model, set_peft_model_state_dict

        self.model = model
        self.config = config
        self.trainable = trainable
        inject_adapter_in_model(config, model, adapter_name=ADAPTER_NAME)
        if state is not None:
            result = set_peft_model_state_dict(model, state, adapter_name=ADAPTER_NAME)
            if result.unexpected_keys:
                raise ValueError(f"reader weights that fit no layer of the model: {result.unexpected_keys[:3]}")
        from peft.tuners.tuners_utils import BaseTunerLayer

        # Found once: the switch runs twice per read batch.
        self._layers = [module for module in model.modules() if isinstance(module, BaseTunerLayer)]
        self._parameters = [param for name, param in model.named_parameters() if f".{ADAPTER_NAME}" in name]
        self._lock = threading.Lock()
        self._switch(False)

    @classmethod
    def new(cls, model: torch.nn.Module, r: int = 16, alpha: int = 32, trainable: bool = True) -> Reader:
        """A fresh reader on every linear layer (its LoRA ``B`` is zero: it starts as the model itself)."""
        from peft import LoraConfig

        config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules="all-linear")
        return cls(model, config, trainable=trainable)

    @classmethod
    def load(cls, model: torch.nn.Module, model_folder: str | Path) -> Reader | None:
        """The reader saved in ``model_folder/reader``, or ``None`` when the folder has none."""
        from peft import LoraConfig

        folder = Path(model_folder) / FOLDER
        if not (folder / CONFIG_FILE).is_file():
            return None
        config = LoraConfig(**_lora_fields(json.loads((folder / CONFIG_FILE).read_text())))
        return cls(model, config, load_file(str(folder / WEIGHTS_FILE)))

    def _switch(self, on: bool) -> None:
        for layer in self._layers:
            layer.enable_adapters(on)
        if self.trainable:
            for param in self._parameters:
                param.requires_grad_(True)

    @contextmanager
    def active(self):
        """The reader on for the duration (one thread at a time; the others wait)."""
        with self._lock:
            self._switch(True)
            try:
                yield
            finally:
                self._switch(False)

    def parameters(self) -> list[torch.nn.Parameter]:
        """The reader's trainable weights."""
        return list(self._parameters)

    def state_dict(self) -> dict[str, torch.Tensor]:
        from peft import get_peft_model_state_dict

        return {
            key: value.detach().cpu().contiguous()
            for key, value in get_peft_model_state_dict(self.model, adapter_name=ADAPTER_NAME).items()
        }

    def save(self, model_folder: str | Path) -> None:
        """Writes ``model_folder/reader/`` (each file complete or absent)."""
        folder = Path(model_folder) / FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        config = self.config.to_dict()
        config["target_modules"] = sorted(config["target_modules"] or [])
        write_file(folder / WEIGHTS_FILE, save(self.state_dict()))
        write_file(folder / CONFIG_FILE, json.dumps(config, indent=2, default=str))

    def base_state_dict(self) -> dict[str, torch.Tensor]:
        """The LLM's own weights, under their names without the reader (what ``save_pretrained`` should write)."""
        return without_reader(self.model.state_dict())


def without_reader(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict with a reader's LoRA weights left out and the layers it wraps under their own names (a state
    dict without a reader comes back as it is)."""
    return {
        key.replace(".base_layer.", "."): value
        for key, value in state.items()
        if f".{ADAPTER_NAME}" not in key and "lora_" not in key
    }


def _lora_fields(config: dict) -> dict:
    """The ``LoraConfig`` fields of a saved adapter config (PEFT adds bookkeeping keys on save)."""
    from peft import LoraConfig

    fields = LoraConfig.__dataclass_fields__
    return {key: value for key, value in config.items() if key in fields and fields[key].init}
