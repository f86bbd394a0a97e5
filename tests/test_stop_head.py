from __future__ import annotations

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from st_search_r3 import SearchR3
from st_search_r3.embedding import left_pad
from st_search_r3.stop_head import STOP_HEAD_FILE, StopHead
from tests.test_module import cosines


def lm_head(module: SearchR3) -> torch.nn.Module:
    return module.auto_model.get_output_embeddings()


def hidden_states(module: SearchR3, queries: list[str]) -> torch.Tensor:
    ids, mask = left_pad([module.query_prompt_ids(q) for q in queries], module.tokenizer.pad_token_id)
    with torch.inference_mode():
        return module._last_hidden_states(ids, mask, module.reasoning_prompt)


def test_a_head_from_the_lm_head_changes_no_logit(tiny_model, texts):
    module = tiny_model[0]
    head = StopHead.from_lm_head(lm_head(module), module.embed_token_id)
    hidden = hidden_states(module, texts["queries"])
    with torch.inference_mode():
        plain = lm_head(module)(hidden)
        with head.attached(lm_head(module), module.embed_token_id):
            attached = lm_head(module)(hidden)
        after = lm_head(module)(hidden)
    torch.testing.assert_close(attached, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(after, plain)


def test_the_head_replaces_only_its_token_and_passes_gradients(tiny_model, texts):
    module = tiny_model[0]
    head = StopHead(torch.zeros(64), bias=7.0)
    hidden = hidden_states(module, texts["queries"][:2]).clone()
    with head.attached(lm_head(module), module.embed_token_id):
        logits = lm_head(module)(hidden)
    plain = lm_head(module)(hidden)
    others = torch.arange(logits.shape[-1]) != module.embed_token_id
    torch.testing.assert_close(logits[:, others], plain[:, others])
    assert torch.equal(logits[:, module.embed_token_id], torch.full((2,), 7.0))
    logits[:, module.embed_token_id].sum().backward()
    assert head.bias.grad == 2.0 and head.weight.grad is not None


def test_saved_with_the_model_and_loaded_back(tiny_llm, tmp_path, texts):
    module = SearchR3(tiny_llm, max_reasoning_tokens=8, max_seq_length=192, reasoning="auto")
    module.stop_head = StopHead(torch.randn(64), bias=-1.5)
    model = SentenceTransformer(modules=[module])
    model.save(str(tmp_path / "saved"))
    assert (tmp_path / "saved" / STOP_HEAD_FILE).is_file()
    loaded = SentenceTransformer(str(tmp_path / "saved"), trust_remote_code=True)
    assert loaded[0].reasoning == "auto"
    torch.testing.assert_close(loaded[0].stop_head.weight, module.stop_head.weight)
    assert loaded[0].stop_head.bias.item() == pytest.approx(-1.5)
    np.testing.assert_allclose(loaded.encode_query(texts["queries"]), model.encode_query(texts["queries"]), atol=1e-5)


def test_no_head_file_means_no_head(tiny_model):
    assert tiny_model[0].stop_head is None


def test_auto_takes_the_direct_vector_where_the_model_stops_at_once(tiny_model, texts):
    module = tiny_model[0]
    module.stop_head = StopHead(torch.zeros(64), bias=1e4)  # always "no reasoning needed"
    calls = []
    original = module.auto_model.generate
    module.auto_model.generate = lambda *a, **k: calls.append(1) or original(*a, **k)
    auto = tiny_model.encode_query(texts["queries"], reasoning="auto")
    direct = tiny_model.encode_query(texts["queries"], reasoning=False)
    assert calls == [], "no query reasoned"
    np.testing.assert_allclose(auto, direct, atol=1e-6)
    traces = module.reasoning_traces(texts["queries"], reasoning="auto")
    assert all(t.token_ids == () and t.stop_token_id == module.embed_token_id for t in traces)
    assert calls == [], "the choice was remembered"
    np.testing.assert_allclose(tiny_model.encode_query(texts["queries"], reasoning="auto"), direct, atol=1e-6)


def test_forced_reasoning_writes_at_least_one_token(tiny_model, texts):
    module = tiny_model[0]
    module.stop_head = StopHead(torch.zeros(64), bias=1e4)
    traces = module.reasoning_traces(texts["queries"], reasoning=True)
    assert all(len(t.token_ids) == 1 and t.stop_token_id == module.embed_token_id for t in traces)


def test_auto_equals_forced_reasoning_where_the_model_never_stops_at_once(tiny_model, texts):
    module = tiny_model[0]
    module.stop_head = StopHead(torch.zeros(64), bias=-1e4)
    auto = tiny_model.encode_query(texts["queries"], reasoning="auto")
    forced = tiny_model.encode_query(texts["queries"], reasoning=True)
    assert cosines(auto, forced).min() > 0.9999
    assert all(len(t.token_ids) for t in module.reasoning_traces(texts["queries"], reasoning="auto"))


def half_stopping_head(module: SearchR3, queries: list[str]) -> StopHead:
    """A head under which about half of ``queries`` stop at once."""
    torch.manual_seed(0)
    weight = torch.randn(64)
    hidden = hidden_states(module, queries)
    with torch.inference_mode():
        logits = lm_head(module)(hidden)
        logits[:, module.embed_token_id] = -float("inf")
        needed = logits.max(dim=-1).values - hidden @ weight
    return StopHead(weight, bias=float(needed.median()) + 1e-3)


def test_auto_mixed_batch_agrees_with_one_by_one(tiny_model, texts):
    module = tiny_model[0]
    queries = texts["queries"]
    module.stop_head = half_stopping_head(module, queries)
    batched = tiny_model.encode_query(queries, batch_size=len(queries), reasoning="auto")
    traces = module.reasoning_traces(queries, reasoning="auto")
    stopped = [t.token_ids == () for t in traces]
    assert 0 < sum(stopped) < len(queries)
    direct = tiny_model.encode_query(queries, reasoning=False)
    forced = tiny_model.encode_query(queries, reasoning=True)
    for row, at_once in enumerate(stopped):
        expected = direct[row] if at_once else forced[row]
        assert cosines(batched[row], expected) > 0.9999
    module.forget_reasoning()
    single = np.stack([tiny_model.encode_query([q], reasoning="auto")[0] for q in queries])
    assert cosines(batched, single).min() > 0.9999


def test_auto_with_fused_views_keeps_the_direct_vector_for_queries_that_stop(tiny_llm, texts):
    module = SearchR3(tiny_llm, max_reasoning_tokens=8, max_seq_length=192, fuse_direct_embedding=True)
    model = SentenceTransformer(modules=[module])
    module.stop_head = half_stopping_head(module, texts["queries"])
    auto = model.encode_query(texts["queries"], reasoning="auto")
    direct = model.encode_query(texts["queries"], reasoning=False)
    stopped = np.array([t.token_ids == () for t in module.reasoning_traces(texts["queries"], reasoning="auto")])
    np.testing.assert_allclose(auto[stopped], direct[stopped], atol=1e-5)
    assert cosines(auto[~stopped], direct[~stopped]).max() < 0.9999


def test_reasoning_setting_is_checked(tiny_llm):
    with pytest.raises(TypeError, match="auto"):
        SearchR3(tiny_llm, reasoning="sometimes")
