"""Generating a query's reasoning: greedy decoding that stops at ``<|embed_token|>``, repetition guards over
the generated tokens only, and the traces the module remembers."""

from __future__ import annotations

import hashlib

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessorList,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
)

from st_search_r3.reasoning_memory import Trace


def generation_config(
    max_new_tokens: int, stop_token_ids: list[int], pad_token_id: int, **overrides
) -> GenerationConfig:
    """Greedy decoding within ``max_new_tokens`` that ends at any of ``stop_token_ids``; ``overrides`` win."""
    settings = dict(
        max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop_token_ids, pad_token_id=pad_token_id
    )
    return GenerationConfig(**{**settings, **overrides})


def repetition_guards(repetition_penalty: float, no_repeat_ngram_size: int, prompt_width: int) -> LogitsProcessorList:
    """``repetition_penalty`` (1.0: off) and ``no_repeat_ngram_size`` (0: off) over the generated tokens only:
    transformers' own processors would also count the prompt, and so penalise the query's words, the chat
    template and the embed token named in the system prompt.

    Args:
        prompt_width: Columns of the left-padded prompt batch; generated tokens start there.
    """
    guards = []
    if repetition_penalty != 1.0:
        guards.append(RepetitionPenaltyLogitsProcessor(repetition_penalty))
    if no_repeat_ngram_size:
        guards.append(NoRepeatNGramLogitsProcessor(no_repeat_ngram_size))
    return LogitsProcessorList([GeneratedTokensOnly(guard, prompt_width) for guard in guards])


class GeneratedTokensOnly:
    """Runs a transformers logits processor on the generated columns of ``input_ids`` only.

    Args:
        processor: E.g. ``RepetitionPenaltyLogitsProcessor`` or ``NoRepeatNGramLogitsProcessor``.
        prompt_width: Width of the left-padded prompt batch: every row's generation starts at that column.
    """

    def __init__(self, processor, prompt_width: int) -> None:
        self.processor = processor
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        generated = input_ids[:, self.prompt_width :]
        return self.processor(generated, scores) if generated.shape[1] else scores


def reasoning_lengths(generated: torch.Tensor, stop_ids: list[int]) -> torch.Tensor:
    """Per row, the number of generated tokens before the first stop token (all of them if none)."""
    is_stop = torch.isin(generated, torch.tensor(stop_ids, device=generated.device))
    first_stop = torch.where(is_stop, torch.arange(generated.shape[1], device=generated.device), generated.shape[1])
    return first_stop.min(dim=1).values


def traces(generated: torch.Tensor, lengths: torch.Tensor) -> list[Trace]:
    """Each row's reasoning and the token that ended it (``None`` when the budget ran out)."""
    return [
        Trace(row[:length].tolist(), int(row[length]) if length < len(row) else None)
        for row, length in zip(generated, lengths.tolist())
    ]


def memory_key(settings: tuple, prompt_ids: list[int]) -> bytes:
    """A 32-byte key for a query's reasoning: a digest of the decoding ``settings`` and the prompt's token ids
    (holding the ids themselves would keep the whole system prompt in every entry, ~6 KB each)."""
    digest = hashlib.blake2b(repr(settings).encode(), digest_size=32)
    digest.update(torch.tensor(prompt_ids, dtype=torch.int64).numpy().tobytes())
    return digest.digest()
