"""The output row of ``<|embed_token|>``: when the model stops reasoning, learned apart from what it embeds.

SmolLM2 (like most small LMs) ties its output matrix to its input embeddings, so the row that decides "emit
``<|embed_token|>`` now" is the very row that is fed in to read the embedding. Training one drags the other. The
stop head gives the token a logit of its own, ``h . weight + bias`` from the last hidden state ``h``, which
replaces the LM head's logit for that one token while the head is attached; every other logit and the input row
are untouched.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from st_search_r3.atomic import write_file

STOP_HEAD_FILE = "stop_head.safetensors"


class StopHead(torch.nn.Module):
    """The ``<|embed_token|>`` logit, ``hidden @ weight + bias``, substituted for the LM head's own.

    Args:
        weight: The row (``hidden_size``); start from the LM head's row of the token to change nothing at first.
        bias: The offset of the logit (0 for the LM head's behaviour: SmolLM2's head has no bias).
    """

    def __init__(self, weight: torch.Tensor, bias: float = 0.0) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(weight.detach().float().clone())
        self.bias = torch.nn.Parameter(torch.tensor(float(bias)))

    @classmethod
    def from_lm_head(cls, lm_head: torch.nn.Module, token_id: int) -> StopHead:
        """A head that reproduces the LM head's logit for ``token_id`` exactly."""
        bias = 0.0 if getattr(lm_head, "bias", None) is None else float(lm_head.bias[token_id])
        return cls(lm_head.weight[token_id], bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """The stop logit of each hidden state (``hidden``'s shape without the last dimension)."""
        return hidden.float() @ self.weight + self.bias

    def attach(self, lm_head: torch.nn.Module, token_id: int) -> torch.utils.hooks.RemovableHandle:
        """From now on ``lm_head``'s output column ``token_id`` is this head's logit (differentiably), until the
        returned handle's ``remove()``."""

        def replace_logit(module, inputs, logits):
            stop = self(inputs[0]).to(logits.dtype).unsqueeze(-1)
            index = torch.tensor([token_id], device=logits.device)
            return logits.index_copy(-1, index, stop)

        return lm_head.register_forward_hook(replace_logit)

    @contextmanager
    def attached(self, lm_head: torch.nn.Module, token_id: int):
        """:meth:`attach` while inside."""
        handle = self.attach(lm_head, token_id)
        try:
            yield self
        finally:
            handle.remove()

    def save(self, folder: str | Path) -> None:
        """Writes ``stop_head.safetensors`` into ``folder`` (atomically)."""
        tensors = {"weight": self.weight.detach().cpu().contiguous(), "bias": self.bias.detach().cpu().reshape(1)}
        write_file(Path(folder) / STOP_HEAD_FILE, save(tensors))

    @classmethod
    def load(cls, folder: str | Path) -> StopHead | None:
        """The head saved in ``folder``, or ``None`` if it has none."""
        path = Path(folder) / STOP_HEAD_FILE
        if not path.is_file():
            return None
        tensors = load_file(str(path))
        return cls(tensors["weight"], float(tensors["bias"][0]))
