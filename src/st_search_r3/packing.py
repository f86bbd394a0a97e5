"""One-pass embeddings without padding: the inference path of documents and of queries without reasoning.

The prompts of a batch share their template prefix, then differ in length. Left-padding them into a
rectangle spends a fifth (WordNet) to a quarter (Debian) of the work of a batch of 32 on padding. Here the
prefix runs once and the rest of every prompt is packed into one row: each text's tokens attend to the
prefix and to themselves only (texts of one length share a batched product, each on exactly its own
keys) and their positions continue from the prefix. No work goes to padding, and a text's attention is
the same alone as in any batch, so its vector does not depend on its neighbours.

Attention is routed through transformers' attention interface: :func:`enable_packing` switches the model
to the ``search_r3_packed`` implementation, which is plain SDPA (with transformers' SDPA masks) for every
ordinary call, training and generation included, and the per-text loop only for calls that carry
``packed_lengths``.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

from st_search_r3.embedding import decoder

PACKED_ATTENTION = "search_r3_packed"
# A 4D mask is taken as prepared by transformers and passed through untouched: the packed call needs
# none (each text's causal mask is built per text), so this placeholder skips building a (1, N, N) mask.
_NO_MASK = torch.ones(1, 1, 1, 1, dtype=torch.bool)


def packed_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    packed_lengths: list[int] | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """SDPA, or, when ``packed_lengths`` is given, causal attention within each packed text plus the prefix.

    For a packed call, ``key``/``value`` hold the cached prefix followed by the packed texts, ``query``
    the packed texts only (batch 1). Returns ``(attention output in (batch, tokens, heads, dim), None)``
    like transformers' own implementations.
    """
    if packed_lengths is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    prefix = key.shape[2] - query.shape[2]
    heads, kv_heads, dim = query.shape[1], key.shape[1], query.shape[3]
    groups = heads // kv_heads
    scale = scaling if scaling is not None else dim**-0.5
    starts = [0, *torch.tensor(packed_lengths).cumsum(0).tolist()[:-1]]
    output = None  # allocated with the products' dtype: under autocast it is not the query's
    # Texts of one length go together through two batched products; each text still sees exactly its
    # own keys, so the result does not depend on which other texts share the call.
    for length in sorted(set(packed_lengths)):
        texts = [start for start, n in zip(starts, packed_lengths) if n == length]
        tokens = (torch.tensor(texts)[:, None] + torch.arange(length)[None]).flatten().to(query.device)
        count = len(texts)
        queries = query[0][:, tokens].view(kv_heads, groups, count, length, dim).permute(2, 0, 1, 3, 4)
        queries = queries.reshape(count * kv_heads, groups * length, dim)
        keys, values = (
            torch.cat(
                [
                    states[0, :, :prefix].expand(count, -1, -1, -1),
                    states[0][:, prefix + tokens].view(kv_heads, count, length, dim).transpose(0, 1),
                ],
                dim=2,
            ).reshape(count * kv_heads, prefix + length, dim)
            for states in (key, value)
        )
        scores = torch.bmm(queries, keys.transpose(1, 2)) * scale
        future = torch.ones(length, prefix + length, dtype=torch.bool, device=query.device).triu(prefix + 1)
        scores = scores.masked_fill(future.repeat(groups, 1), float("-inf"))
        probabilities = torch.softmax(scores, dim=-1, dtype=torch.float32).to(values.dtype)
        attended = torch.bmm(probabilities, values).view(count, heads, length, dim)
        if output is None:
            output = attended.new_empty(heads, query.shape[2], dim)
        output[:, tokens] = attended.transpose(0, 1).reshape(heads, count * length, dim)
    return output.transpose(0, 1)[None], None


AttentionInterface.register(PACKED_ATTENTION, packed_attention)
AttentionMaskInterface.register(PACKED_ATTENTION, sdpa_mask)


def enable_packing(model: torch.nn.Module) -> bool:
    """Switches ``model`` to the packed-capable attention when its attention is plain causal SDPA.

    Sliding-window layers and logit soft-capping are not reproduced by the packed loop, and models that
    do not use transformers' attention interface cannot be switched: those keep their attention and
    :func:`packed_last_hidden_states` must not be used with them.

    Returns:
        Whether packing is enabled.
    """
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = causal_lm.config
    layer_types = getattr(config, "layer_types", None) or ["full_attention"]
    if any(kind != "full_attention" for kind in layer_types):
        return False
    if getattr(config, "attn_logit_softcapping", None) is not None:
        return False
    if getattr(config, "_attn_implementation", None) not in ("sdpa", PACKED_ATTENTION):
        return False
    try:
        causal_lm.set_attn_implementation(PACKED_ATTENTION)
    except (ValueError, NotImplementedError, AttributeError):
        return False
    return True


def packed_last_hidden_states(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    prefix_length: int,
    round_tokens_to: int = 1,
) -> torch.Tensor:
    """Final hidden state at the last token of every left-padded row, computed without padding.

    Args:
        model: A causal LM switched by :func:`enable_packing`.
        input_ids: Left-padded token ids, ``(batch, width)``.
        attention_mask: Their mask.
        prefix_length: How many leading real tokens all rows share (run once); at least one token of
            every row must follow it.
        round_tokens_to: Pads the packed row with a filler text (attending to itself only, its states
            dropped) to a multiple of this many tokens, so that fewer distinct matrix shapes occur.

    Returns:
        ``(batch, hidden)``.
    """
    body = decoder(model)
    lengths = attention_mask.sum(dim=1)
    width = input_ids.shape[1]
    first_real = width - int(lengths[0])
    cache = None
    if prefix_length:
        prefix = input_ids[:1, first_real : first_real + prefix_length]
        cache = body(input_ids=prefix, use_cache=True).cache
    rest = (lengths - prefix_length).tolist()
    texts = [row[width - n :] for row, n in zip(input_ids, rest)]
    filler = -sum(rest) % round_tokens_to
    if filler:
        texts.append(input_ids.new_full((filler,), int(input_ids[0, -1])))
    packed_lengths = [len(text) for text in texts]
    positions = torch.cat([torch.arange(prefix_length, prefix_length + n) for n in packed_lengths])
    hidden = body(
        input_ids=torch.cat(texts)[None],
        attention_mask=_NO_MASK.to(input_ids.device),
        position_ids=positions[None].to(input_ids.device),
        cache=cache,
        use_cache=cache is not None,
        packed_lengths=packed_lengths,
    ).last_hidden_state[0]
    return hidden[torch.tensor(rest, device=hidden.device).cumsum(0) - 1]


# oneDNN's float32 math mode is one flag for the whole process: every search-r3 forward on CPU holds this
# lock while it runs under the mode it chose, so that two threads encoding at once never run in each
# other's mode. Re-entrant: a forward may nest another (the direct view of a fused query).
_MATMUL_MODE_LOCK = threading.RLock()


@contextmanager
def cpu_matmul_precision(precision: str | None):
    """Runs float32 matrix products on CPU with bfloat16 inputs and float32 accumulation (``"bfloat16"``,
    oneDNN's bf16 math mode: native on CPUs with AMX or AVX512-BF16) or exactly (``"float32"``).

    The flag is process-wide; it is set and restored under a process-wide lock, so search-r3 calls from
    several threads run one at a time on CPU (each already uses every core). Code outside search-r3 that
    runs float32 CPU matmuls in another thread meanwhile also gets the mode. ``None`` holds the lock and
    keeps the current mode (the paths that must not meet another thread's bf16 mode: generation, training).
    """
    if precision is None:
        with _MATMUL_MODE_LOCK:
            yield
        return
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision must be 'float32' or 'bfloat16', got {precision!r}")
    settings = torch.backends.mkldnn.matmul
    with _MATMUL_MODE_LOCK:
        previous = settings.fp32_precision
        settings.fp32_precision = "bf16" if precision == "bfloat16" else "ieee"
        try:
            yield
        finally:
            settings.fp32_precision = previous
