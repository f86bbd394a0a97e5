"""Reading embeddings out of a causal LM: the final hidden state at ``<|embed_token|>``.

Batches are left-padded so that the embed token is the last position of every row. Padding is found
by the attention mask, never by token id (for SmolLM2 the pad id is also ``<|im_end|>``, which occurs
inside prompts), and position ids count only attended tokens, so a text gets the same vector alone
or in any batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def left_pad(
    sequences: list[list[int]], pad_token_id: int, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pads token id lists into ``(input_ids, attention_mask)``."""
    width = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        if ids:
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention_mask[row, width - len(ids) :] = 1
    return input_ids.to(device), attention_mask.to(device)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that count attended tokens only (0 for the first real token of every row)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def decoder(model: torch.nn.Module) -> torch.nn.Module:
    """The transformer body of a causal LM (its ``last_hidden_state`` is after the final norm)."""
    return model.get_decoder() if hasattr(model, "get_decoder") else model.base_model


def final_hidden_states(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Last-layer hidden states (after the final norm) at every position of left-padded rows."""
    return decoder(model)(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
        use_cache=False,
    ).last_hidden_state


def last_token_embedding(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Final hidden state at the last position of left-padded rows. Skips the LM head."""
    return final_hidden_states(model, input_ids, attention_mask)[:, -1]


def embed_after_generation(
    model: torch.nn.Module,
    cache,
    prompt_mask: torch.Tensor,
    generated: torch.Tensor,
    lengths: torch.Tensor,
    embed_token_id: int,
    pad_token_id: int,
) -> torch.Tensor:
    """The embed token's final hidden state, placed right after each row's reasoning, from the KV cache.

    After ``generate`` the cache holds the prompt and all generated tokens but the last. Each row gets
    two new tokens: its last reasoning token when generation ran out of budget (it is not in the cache
    yet), else a masked filler; then ``<|embed_token|>``. Cached tokens after a row's reasoning (a stop
    token, padding of finished rows) are masked out and positions continue from the reasoning, so the
    result equals a full forward pass over ``prompt + reasoning + <|embed_token|>``.

    Args:
        model: The causal LM that generated.
        cache: ``generate(..., return_dict_in_generate=True).cache``, the KV cache.
        prompt_mask: Attention mask of the (left-padded) prompts.
        generated: The generated tokens, ``sequences[:, prompt_len:]``.
        lengths: Reasoning length per row (see :func:`st_search_r3.reasoning.reasoning_lengths`).
    """
    steps = generated.shape[1]
    cached = torch.arange(steps - 1, device=generated.device)[None, :] < lengths[:, None]
    out_of_budget = lengths == steps
    last_token = torch.where(out_of_budget, generated[:, -1], pad_token_id)
    input_ids = torch.stack([last_token, torch.full_like(last_token, embed_token_id)], dim=1)
    new_mask = torch.stack([out_of_budget, torch.ones_like(out_of_budget)], dim=1)
    attention_mask = torch.cat([prompt_mask.bool(), cached, new_mask], dim=1).long()
    embed_position = prompt_mask.sum(dim=1) + lengths
    position_ids = torch.stack([(embed_position - 1).clamp(min=0), embed_position], dim=1)
    output = decoder(model)(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        cache=cache,
        use_cache=True,
    )
    return output.last_hidden_state[:, -1]


def fuse(reasoned: torch.Tensor, direct: torch.Tensor) -> torch.Tensor:
    """The sum of the two views of a query, each L2-normalised first so that neither outweighs the other."""
    return F.normalize(reasoned.float(), dim=-1) + F.normalize(direct.float(), dim=-1)


def common_prefix_length(input_ids: torch.Tensor, attention_mask: torch.Tensor, limit: int | None = None) -> int:
    """How many tokens every left-padded row starts with, at most ``limit`` and one less than the shortest row."""
    lengths = attention_mask.sum(dim=1)
    most = int(lengths.min()) - 1 if limit is None else min(int(lengths.min()) - 1, limit)
    if most <= 0:
        return 0
    columns = (input_ids.shape[1] - lengths)[:, None] + torch.arange(most, device=input_ids.device)[None, :]
    heads = input_ids.gather(1, columns)
    return int((heads == heads[:1]).all(dim=0).long().cumprod(dim=0).sum())


def shared_prefix_hidden_states(
    model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, prefix_length: int
) -> torch.Tensor:
    """``final_hidden_states(...)[:, prefix_length:]`` for rows that all start with the same ``prefix_length``
    tokens, computing that prefix once.

    Prompts share their template and system prompt; its keys and values are computed for one row and
    repeated over the batch (differentiably: training uses this too), and only the rest of each row
    runs through the model. Because rows are left-padded, dropping each row's first ``prefix_length``
    real tokens is the same as dropping the first ``prefix_length`` columns and shortening the mask by
    as many columns, so the result stays column-aligned with ``input_ids[:, prefix_length:]``.
    """
    body = decoder(model)
    if prefix_length == 0 or (body.training and getattr(body, "gradient_checkpointing", False)):
        # Gradient checkpointing turns the KV cache off (and would replay cache updates), so the prefix runs per row.
        return final_hidden_states(model, input_ids, attention_mask)[:, prefix_length:]
    width = input_ids.shape[1]
    first_real = width - int(attention_mask[0].sum())
    prefix = input_ids[:1, first_real : first_real + prefix_length]
    rest_mask = attention_mask[:, : width - prefix_length]
    cache = body(input_ids=prefix, use_cache=True).cache
    cache.batch_repeat_interleave(len(input_ids))
    output = body(
        input_ids=input_ids[:, prefix_length:],
        attention_mask=torch.cat([torch.ones_like(attention_mask[:, :prefix_length]), rest_mask], dim=1),
        position_ids=prefix_length + position_ids_from_mask(rest_mask),
        cache=cache,
        use_cache=True,
    )
    return output.last_hidden_state


def length_sorted_hidden_states(
    model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, prefix_length: int, rows: int
) -> torch.Tensor:
    """:func:`shared_prefix_hidden_states` run on groups of ``rows`` rows of similar length, each padded only
    to its own longest row, and put back in place (left-padded to the batch's width, in the batch's order).

    A CPU spends its time in proportion to the tokens it is given, padding included: a training batch of 16
    is a quarter to a third padding, and groups of 4 rows sorted by length remove most of it. Rows never
    attend to each other, so the result equals the one-pass result (up to float rounding).
    """
    if rows >= len(input_ids):
        return shared_prefix_hidden_states(model, input_ids, attention_mask, prefix_length)
    lengths = attention_mask.sum(dim=1)
    order = lengths.argsort(descending=True, stable=True)
    width = input_ids.shape[1]
    groups = []
    for group in order.split(rows):
        own_width = int(lengths[group].max())
        states = shared_prefix_hidden_states(
            model, input_ids[group, width - own_width :], attention_mask[group, width - own_width :], prefix_length
        )
        groups.append(F.pad(states, (0, 0, width - own_width, 0)))
    return torch.cat(groups)[order.argsort()]
