from __future__ import annotations

import torch

from st_search_r3.embedding import left_pad, position_ids_from_mask, reasoning_lengths


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


def test_shared_prefix_embedding_equals_the_full_forward_pass(tiny_model, texts):
    from st_search_r3.embedding import last_token_embedding, shared_prefix_embedding

    module = tiny_model[0]
    features = module.preprocess(texts["documents"], task="document")
    prefix = module.prompts.template(module.embedding_prompt)[0]
    with torch.inference_mode():
        full = last_token_embedding(module.auto_model, features["input_ids"], features["attention_mask"])
        shared = shared_prefix_embedding(
            module.auto_model, prefix, features["input_ids"], features["attention_mask"], module.tokenizer.pad_token_id
        )
    torch.testing.assert_close(shared, full, rtol=1e-4, atol=1e-5)
