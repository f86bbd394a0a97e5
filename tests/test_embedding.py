from __future__ import annotations

import pytest
import torch

from st_search_r3.embedding import left_pad, position_ids_from_mask
from st_search_r3.reasoning import reasoning_lengths


def test_left_pad_puts_padding_first_and_masks_it():
    ids, mask = left_pad([[5, 6, 7], [8], []], pad_token_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8], [0, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1], [0, 0, 0]]


def test_positions_count_attended_tokens_only():
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert position_ids_from_mask(mask).tolist() == [[0, 0, 0, 1], [0, 1, 2, 3]]


def test_reasoning_length_stops_at_the_first_stop_token():
    generated = torch.tensor([[4, 5, 9, 2, 2], [4, 2, 5, 9, 2], [4, 5, 6, 7, 8]])
    assert reasoning_lengths(generated, stop_ids=[2, 9]).tolist() == [2, 1, 5]


def test_common_prefix_length_counts_shared_real_tokens_and_leaves_one():
    from st_search_r3.embedding import common_prefix_length, left_pad

    ids, mask = left_pad([[1, 2, 3, 4], [1, 2, 3, 5, 6], [1, 2, 7]], pad_token_id=0)
    assert common_prefix_length(ids, mask) == 2
    assert common_prefix_length(ids, mask, limit=1) == 1
    ids, mask = left_pad([[1, 2, 3], [1, 2, 3]], pad_token_id=0)
    assert common_prefix_length(ids, mask) == 2  # one token is left to run in every row
    ids, mask = left_pad([[1, 2], [9, 2]], pad_token_id=0)
    assert common_prefix_length(ids, mask) == 0


@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "gradient-checkpointing"])
def test_shared_prefix_hidden_states_equal_the_full_pass_with_the_same_gradients(tiny_model, texts, checkpointing):
    from st_search_r3.embedding import common_prefix_length, final_hidden_states, shared_prefix_hidden_states

    module = tiny_model[0]
    model = module.auto_model
    if checkpointing:  # the KV cache is off under gradient checkpointing: the prefix then runs per row
        model.activation_checkpointing_enable()
        model.train()
    features = module.preprocess(texts["documents"], task="document")
    ids, mask = features["input_ids"], features["attention_mask"]
    prefix = common_prefix_length(ids, mask)
    assert prefix >= len(module.prompts.template(module.embedding_prompt)[0])
    results = []
    for compute in (
        lambda: final_hidden_states(model, ids, mask)[:, prefix:],
        lambda: shared_prefix_hidden_states(model, ids, mask, prefix),
    ):
        model.zero_grad()
        hidden = compute()
        kept = mask[:, : ids.shape[1] - prefix].bool()  # the real tokens after the prefix
        hidden[kept].square().sum().backward()
        results.append((hidden[kept].detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (full, full_grads), (shared, shared_grads) = results
    torch.testing.assert_close(shared, full, rtol=1e-4, atol=1e-5)
    for a, b in zip(shared_grads, full_grads, strict=True):  # float rounding only
        assert (a - b).norm() <= 1e-4 * b.norm()


def test_length_sorted_groups_give_the_one_pass_states_and_gradients(tiny_model, texts):
    from st_search_r3.embedding import common_prefix_length, length_sorted_hidden_states, shared_prefix_hidden_states

    module = tiny_model[0]
    model = module.auto_model
    features = module.preprocess(texts["documents"] + texts["queries"], task="document")
    ids, mask = features["input_ids"], features["attention_mask"]
    assert len(set(mask.sum(1).tolist())) > 2  # rows of several lengths, so that groups differ in width
    prefix = common_prefix_length(ids, mask)
    results = []
    for rows in (len(ids), 2):
        model.zero_grad()
        hidden = length_sorted_hidden_states(model, ids, mask, prefix, rows)
        assert hidden.shape[:2] == (len(ids), ids.shape[1] - prefix)
        kept = mask[:, : ids.shape[1] - prefix].bool()  # the real tokens after the prefix
        hidden[kept].square().sum().backward()
        results.append((hidden[kept].detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    assert torch.equal(results[0][0], shared_prefix_hidden_states(model, ids, mask, prefix)[kept])
    (whole, whole_grads), (grouped, grouped_grads) = results
    torch.testing.assert_close(grouped, whole, rtol=1e-4, atol=1e-5)
    for a, b in zip(grouped_grads, whole_grads, strict=True):
        assert (a - b).norm() <= 1e-4 * b.norm()


NO_DEPRECATED_CACHE_NAME = """
import logging, sys, warnings
import torch
from sentence_transformers import SentenceTransformer
from st_search_r3 import SearchR3

warnings.simplefilter("always")
messages = []
logging.getLogger("transformers").addHandler(logging.Handler())
logging.getLogger("transformers").handlers[-1].emit = lambda record: messages.append(record.getMessage())
with warnings.catch_warnings(record=True) as caught:
    model = SentenceTransformer(modules=[SearchR3(sys.argv[1], max_reasoning_tokens=4, max_seq_length=192)])
    model.encode_document(["a wild cat", "a small boat on a lake"])              # packed, shared prefix
    model.encode_query(["large feline"], reasoning=True)                         # generation, then the KV step
    features = model[0].preprocess(["a wild cat", "a boat"], task="document")
    with torch.enable_grad():
        model[0](features)                                                        # training: shared prefix
messages += [str(warning.message) for warning in caught]
print("\\n".join(m for m in messages if "past_key_values" in m))
"""


def test_every_path_names_the_kv_cache_as_transformers_does_now(tiny_llm):
    """transformers 5.24 renamed ``past_key_values`` to ``cache`` (the old name goes in 5.40): no path of ours uses
    the old one. In a fresh interpreter, because transformers warns once per process."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", NO_DEPRECATED_CACHE_NAME, tiny_llm], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "", result.stdout
