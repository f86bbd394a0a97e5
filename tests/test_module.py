from __future__ import annotations

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer
from transformers import LogitsProcessor, LogitsProcessorList

from st_search_r3 import EMBED_TOKEN, SearchR3
from st_search_r3.embedding import last_token_embedding, left_pad


def cosines(a, b) -> np.ndarray:
    a, b = np.asarray(a), np.asarray(b)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


class ForceEndings(LogitsProcessor):
    """Per row: end with a given token at a given step, or ``None`` to never stop (run out of budget)."""

    def __init__(self, plan: list[tuple[int, int] | None], stop_ids: list[int]) -> None:
        self.plan, self.stop_ids, self.prompt_length = plan, stop_ids, None

    def __call__(self, input_ids, scores):
        self.prompt_length = self.prompt_length or input_ids.shape[1]
        step = input_ids.shape[1] - self.prompt_length
        scores = scores.clone()
        for row, ending in enumerate(self.plan):
            scores[row, self.stop_ids] = -float("inf")
            if ending is not None and step == ending[1]:
                scores[row] = -float("inf")
                scores[row, ending[0]] = 0.0
        return scores


def full_forward_embedding(module: SearchR3, query: str, reasoning_ids: list[int]) -> torch.Tensor:
    prompt = module.query_prompt_ids(query)
    ids, mask = left_pad([prompt + list(reasoning_ids) + [module.embed_token_id]], module.tokenizer.pad_token_id)
    with torch.inference_mode():
        return torch.nn.functional.normalize(last_token_embedding(module.auto_model, ids, mask), dim=-1)[0]


def test_documents_are_unit_vectors_of_the_hidden_size(tiny_model, texts):
    embeddings = tiny_model.encode_document(texts["documents"])
    assert embeddings.shape == (6, 64)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert tiny_model.similarity_fn_name == "cosine"


def test_document_prompt_ends_with_the_embed_token(tiny_model):
    module = tiny_model[0]
    features = module.preprocess(["a short text", "a somewhat longer text than the other one"], task="document")
    assert (features["input_ids"][:, -1] == module.embed_token_id).all()
    assert features["attention_mask"][0, 0] == 0, "rows are padded on the left"
    assert module.tokenizer.convert_ids_to_tokens(module.embed_token_id) == EMBED_TOKEN


@pytest.mark.parametrize("task", ["query", "document"])
def test_batched_and_one_by_one_agree(tiny_model, texts, task):
    encode = tiny_model.encode_query if task == "query" else tiny_model.encode_document
    inputs = texts["queries" if task == "query" else "documents"]
    batched = encode(inputs, batch_size=len(inputs))
    tiny_model[0].forget_reasoning()
    single = np.stack([encode([text])[0] for text in inputs])
    assert cosines(batched, single).min() > 0.9999


def test_kv_cache_embedding_equals_full_forward_for_every_ending(tiny_model, texts, monkeypatch):
    module = tiny_model[0]
    stop_ids = [module.tokenizer.eos_token_id, module.embed_token_id]
    # Row 0 emits the embed token at step 2, row 1 ends on EOS at step 5, row 2 runs out of budget.
    plan = [(module.embed_token_id, 2), (module.tokenizer.eos_token_id, 5), None]
    original = module.auto_model.generate

    def generate(*args, logits_processor=None, **kwargs):
        forced = LogitsProcessorList([*(logits_processor or []), ForceEndings(plan, stop_ids)])
        return original(*args, logits_processor=forced, **kwargs)

    monkeypatch.setattr(module.auto_model, "generate", generate)
    queries = texts["queries"][:3]
    with torch.inference_mode():  # the module itself: encode() would reorder the rows by length
        embeddings = module(module.preprocess(queries, task="query"), task="query")["sentence_embedding"].numpy()

    traces = module.reasoning_traces(queries)
    reasoning = [trace.token_ids for trace in traces]
    assert [len(r) for r in reasoning] == [2, 5, module.max_reasoning_tokens]
    assert [t.stop_token_id for t in traces] == [module.embed_token_id, module.tokenizer.eos_token_id, None]
    for query, ids, embedding in zip(queries, reasoning, embeddings):
        expected = full_forward_embedding(module, query, ids)
        assert cosines(embedding, expected.numpy()) > 0.99999
        np.testing.assert_allclose(embedding, expected.numpy(), atol=1e-4)


def test_known_reasoning_is_reused_and_matches_generation(tiny_model, texts):
    module = tiny_model[0]
    first = tiny_model.encode_query(texts["queries"])  # generates: KV-cache path
    calls = []
    original = module.auto_model.generate
    module.auto_model.generate = lambda *a, **k: calls.append(1) or original(*a, **k)
    second = tiny_model.encode_query(texts["queries"])  # remembered reasoning: one full forward
    assert calls == []
    assert cosines(first, second).min() > 0.9999


def test_reasoning_of_returns_the_text_behind_each_vector(tiny_model, texts):
    module = tiny_model[0]
    tiny_model.encode_query(texts["queries"][:2])
    reasoning = module.reasoning_of(texts["queries"][:2])
    assert len(reasoning) == 2 and all(isinstance(text, str) for text in reasoning)
    remembered = [module._memory.get(module._memory_key(p, True)) for p in _prompts(module, texts["queries"][:2])]
    assert reasoning == [module.tokenizer.decode(t.token_ids, skip_special_tokens=True).strip() for t in remembered]
    # Unseen queries are reasoned on demand, then the vectors reuse that reasoning.
    module.forget_reasoning()
    assert module.reasoning_of(texts["queries"][:2]) == reasoning


def test_weight_change_forgets_reasoning(tiny_model, texts):
    module = tiny_model[0]
    tiny_model.encode_query(texts["queries"][:2])
    assert len(module._current_memory()) == 2
    with torch.no_grad():
        module.auto_model.get_input_embeddings().weight.mul_(1.01)
    assert len(module._current_memory()) == 0


def test_reasoning_off_embeds_queries_like_documents(tiny_model, texts):
    queries = texts["queries"][:3]
    off = tiny_model.encode_query(queries, reasoning=False)
    np.testing.assert_allclose(off, tiny_model.encode_document(queries), atol=1e-6)
    assert not np.allclose(off, tiny_model.encode_query(queries), atol=1e-3)


def test_save_and_load_round_trip(tiny_llm, texts, tmp_path):
    module = SearchR3(
        tiny_llm,
        reasoning=False,
        max_reasoning_tokens=5,
        max_seq_length=320,
        embedding_prompt="Embed this.",
        matmul_precision="float32",
    )
    model = SentenceTransformer(modules=[module], similarity_fn_name="cosine")
    model.save(str(tmp_path))
    loaded = SentenceTransformer(str(tmp_path), trust_remote_code=True)
    assert loaded[0].get_config_dict() == module.get_config_dict()
    assert loaded[0].embed_token_id == module.embed_token_id
    assert loaded[0].auto_model.get_input_embeddings().weight.shape[0] == len(module.tokenizer), "no resize twice"
    np.testing.assert_allclose(loaded.encode_query(texts["queries"]), model.encode_query(texts["queries"]), atol=1e-6)
    np.testing.assert_allclose(
        loaded.encode_document(texts["documents"]), model.encode_document(texts["documents"]), atol=1e-6
    )


def test_loading_needs_trust_remote_code(tiny_model, tmp_path):
    tiny_model.save(str(tmp_path))
    with pytest.raises(ValueError, match="trust_remote_code"):
        SentenceTransformer(str(tmp_path))


def test_bf16_precision_is_close_to_float32(tiny_llm, texts):
    fp32 = SentenceTransformer(modules=[SearchR3(tiny_llm, max_reasoning_tokens=4)])
    bf16 = SentenceTransformer(modules=[SearchR3(tiny_llm, max_reasoning_tokens=4, precision="bfloat16")])
    assert cosines(fp32.encode_document(texts["documents"]), bf16.encode_document(texts["documents"])).min() > 0.99
    with pytest.raises(ValueError, match="precision"):
        SearchR3(tiny_llm, precision="float16")


def test_bf16_matmuls_stay_close_to_exact_float32(tiny_llm, texts):
    exact = SentenceTransformer(modules=[SearchR3(tiny_llm, matmul_precision="float32")])
    fast = SentenceTransformer(modules=[SearchR3(tiny_llm)])
    assert fast[0].matmul_precision == "bfloat16"
    assert cosines(exact.encode_document(texts["documents"]), fast.encode_document(texts["documents"])).min() > 0.999
    with pytest.raises(ValueError, match="matmul_precision"):
        SearchR3(tiny_llm, matmul_precision="int8")


@pytest.mark.parametrize("bad", [[None], ["ok", 3], "a bare string", 42])
def test_non_string_inputs_raise_type_error(tiny_model, bad):
    with pytest.raises(TypeError):
        tiny_model[0].preprocess(bad, task="document")


def test_empty_list_is_an_error_in_the_module_and_empty_output_in_encode(tiny_model):
    with pytest.raises(ValueError, match="empty list"):
        tiny_model[0].preprocess([], task="query")
    assert len(tiny_model.encode_query([])) == 0  # sentence-transformers returns before the module


def test_encode_rejects_none(tiny_model):
    with pytest.raises(TypeError):
        tiny_model.encode_document([None, "text"])


def test_empty_string_and_mixed_unicode_give_finite_vectors(tiny_model):
    inputs = ["", "naïve café — 東京 🚀 Ελληνικά مرحبا", "\n\t  "]
    for encode in (tiny_model.encode_query, tiny_model.encode_document):
        embeddings = encode(inputs)
        assert np.isfinite(embeddings).all() and embeddings.shape == (3, 64)


def test_over_long_text_keeps_the_instruction_and_the_embed_token(tiny_model, texts):
    module = tiny_model[0]
    long_text = " ".join(texts["documents"] * 200)
    document = module.preprocess([long_text], task="document")["input_ids"][0].tolist()
    assert len(document) == module.max_seq_length
    assert document[-1] == module.embed_token_id
    assert "Analyze the input text" in module.tokenizer.decode(document)
    query = module.preprocess([long_text], task="query")["input_ids"][0].tolist()
    assert len(query) + module.max_reasoning_tokens + 2 == module.max_seq_length
    assert module.tokenizer.decode(query).endswith("<|im_start|>assistant\n")
    assert np.isfinite(tiny_model.encode_query([long_text])).all()


def test_too_small_max_seq_length_fails_at_construction(tiny_llm):
    with pytest.raises(ValueError, match="max_seq_length"):
        SearchR3(tiny_llm, max_seq_length=20)
    with pytest.raises(ValueError, match="max_seq_length"):
        SearchR3(tiny_llm, max_seq_length=20, reasoning=False)  # no room for a document either
    # Room for documents but not for a query's reasoning: fine until a query asks for reasoning.
    module = SearchR3(tiny_llm, max_seq_length=100, max_reasoning_tokens=64, reasoning=False)
    assert module.preprocess(["text"], task="query")["input_ids"].shape[1] <= 100
    with pytest.raises(ValueError, match="max_seq_length"):
        module.preprocess(["text"], task="query", reasoning=True)


def test_setting_max_seq_length_through_sentence_transformers_truncates(tiny_model, texts):
    module = tiny_model[0]
    long_text = " ".join(texts["documents"] * 200)
    previous = tiny_model.max_seq_length
    try:
        tiny_model.max_seq_length = 250
        assert module.max_seq_length == 250
        assert module.preprocess([long_text], task="document")["input_ids"].shape[1] == 250
        with pytest.raises(ValueError, match="max_seq_length"):
            tiny_model.max_seq_length = 20  # no room left for the query's reasoning
        assert module.max_seq_length == 250
    finally:
        tiny_model.max_seq_length = previous
    assert module.preprocess([long_text], task="document")["input_ids"].shape[1] == previous


def test_multi_process_pool_matches_single_process(tiny_model, texts):
    pool = tiny_model.start_multi_process_pool(["cpu", "cpu"])
    try:
        pooled = tiny_model.encode_document(texts["documents"], pool=pool, chunk_size=3)
        queries = tiny_model.encode_query(texts["queries"][:3], pool=pool, reasoning=False)
    finally:
        tiny_model.stop_multi_process_pool(pool)
    assert cosines(pooled, tiny_model.encode_document(texts["documents"])).min() > 0.9999
    assert cosines(queries, tiny_model.encode_query(texts["queries"][:3], reasoning=False)).min() > 0.9999


def test_forward_names_its_path(tiny_model, texts):
    module = tiny_model[0]
    query, document = texts["queries"][0], texts["documents"][0]
    cases = [
        (module.preprocess([document], task="document"), "document", None, "one_pass"),
        (module.preprocess([query], task="query", reasoning=False), "query", False, "one_pass"),
        (module.preprocess([query], task="query", reasoning=True), "query", True, "reason"),
        (module.preprocess([query], task="query", reasoning="auto"), "query", "auto", "auto"),
        (module.preprocess([(query, [document])], task="query"), "query", None, "read"),
    ]
    with torch.inference_mode():  # as encode runs
        assert [module.forward_path(f, task, reasoning) for f, task, reasoning, _ in cases] == [c[-1] for c in cases]
    with torch.enable_grad():  # as the trainer runs: a batch of prompts that end with the token trains
        assert module.forward_path(cases[0][0], "document", None) == "train"


def _prompts(module: SearchR3, queries: list[str]) -> list[list[int]]:
    return [module.query_prompt_ids(query) for query in queries]


def test_query_with_given_reasoning_is_embedded_in_one_pass(tiny_model, texts):
    module = tiny_model[0]
    query, thought = texts["queries"][0], "a word for a large cat"
    features = module.preprocess([(query, thought), query], task="query")
    assert features["input_ids"][0, -1] == module.embed_token_id
    reasoning_ids = module.prompts.encode(thought)[: module.max_reasoning_tokens]  # cut to the budget
    answer = reasoning_ids + [module.embed_token_id]
    assert features["answer_mask"][0].sum() == len(answer)
    assert features["input_ids"][0][features["answer_mask"][0].bool()].tolist() == answer
    assert features["answer_mask"][1].sum() == 0, "an unreasoned query has no answer yet"
    with torch.inference_mode():
        embedding = module(module.preprocess([(query, thought)], task="query"), task="query")["sentence_embedding"]
    expected = full_forward_embedding(module, query, reasoning_ids)
    np.testing.assert_allclose(embedding[0].numpy(), expected.numpy(), atol=1e-5)


def test_document_answer_mask_covers_the_answer_prefix_and_token(tiny_model):
    module = tiny_model[0]
    features = module.preprocess(["some text"], task="document")
    answer = module.prompts.encode(module.answer_prefix) + [module.embed_token_id]
    assert features["input_ids"][0][features["answer_mask"][0].bool()].tolist() == answer
    with pytest.raises(TypeError):
        module.preprocess([("a", "pair")], task="document")


def test_repetition_guards_are_saved_and_count_generated_tokens_only(tiny_llm, texts, tmp_path):
    module = SearchR3(tiny_llm, max_reasoning_tokens=24, max_seq_length=192, no_repeat_ngram_size=2)
    model = SentenceTransformer(modules=[module], similarity_fn_name="cosine")
    model.encode_query(texts["queries"])
    for trace in module.reasoning_traces(texts["queries"]):
        bigrams = list(zip(trace.token_ids, trace.token_ids[1:]))
        assert len(bigrams) == len(set(bigrams)), "no bigram of the reasoning repeats"
    # The guard ignores the prompt: its first generated token is the unguarded greedy one.
    plain = SearchR3(tiny_llm, max_reasoning_tokens=1, max_seq_length=192)
    guarded = SearchR3(tiny_llm, max_reasoning_tokens=1, max_seq_length=192, repetition_penalty=50.0)
    first = [t.token_ids[:1] for t in plain.reasoning_traces(texts["queries"])]
    assert [t.token_ids[:1] for t in guarded.reasoning_traces(texts["queries"])] == first
    model.save(str(tmp_path / "saved"))
    loaded = SentenceTransformer(str(tmp_path / "saved"), trust_remote_code=True)
    assert (loaded[0].no_repeat_ngram_size, loaded[0].repetition_penalty) == (2, 1.0)


def test_reasoning_memory_is_bounded(tiny_llm, texts):
    module = SearchR3(tiny_llm, max_reasoning_tokens=4, max_seq_length=192, reasoning_memory_size=2)
    model = SentenceTransformer(modules=[module], similarity_fn_name="cosine")
    model.encode_query(texts["queries"])
    assert len(module._memory) == 2
    assert len(module.reasoning_of(texts["queries"])) == len(texts["queries"])


def test_fused_query_vector_is_the_normalised_sum_of_both_views(tiny_llm, texts, tmp_path):
    module = SearchR3(tiny_llm, max_reasoning_tokens=6, max_seq_length=192, fuse_direct_embedding=True)
    model = SentenceTransformer(modules=[module], similarity_fn_name="cosine")
    queries = texts["queries"]
    fused = model.encode_query(queries, batch_size=len(queries))
    direct = model.encode_query(queries, reasoning=False)
    module.fuse_direct_embedding = False
    reasoned = model.encode_query(queries)  # the remembered reasoning, embedded alone
    expected = reasoned + direct
    np.testing.assert_allclose(fused, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-5)
    module.fuse_direct_embedding = True
    module.forget_reasoning()
    single = np.stack([model.encode_query([query])[0] for query in queries])
    assert cosines(fused, single).min() > 0.9999, "batched and one-by-one fused vectors agree"
    assert "direct_ids" not in module.preprocess(queries, task="query", reasoning=False)
    model.save(str(tmp_path / "saved"))
    assert SentenceTransformer(str(tmp_path / "saved"), trust_remote_code=True)[0].fuse_direct_embedding is True


def test_sampled_reasonings_come_n_per_query(tiny_llm, texts):
    module = SearchR3(tiny_llm, max_reasoning_tokens=5, max_seq_length=192)
    torch.manual_seed(0)
    samples = module.sample_reasonings(texts["queries"][:3], num_samples=4, temperature=1.5, batch_size=2)
    assert [len(s) for s in samples] == [4, 4, 4]
    assert len({r for s in samples for r in s}) > 3, "sampling, not greedy: the draws differ"
    assert len(module._memory) == 0, "samples are not remembered as the queries' reasoning"


def test_four_threads_encoding_at_once_get_the_vectors_of_one_thread(tiny_llm, texts):
    from concurrent.futures import ThreadPoolExecutor

    module = SearchR3(tiny_llm, max_reasoning_tokens=6, max_seq_length=192)
    model = SentenceTransformer(modules=[module], similarity_fn_name="cosine")
    jobs = [(model.encode_document, texts["documents"]), (model.encode_query, texts["queries"])] * 2
    alone = [encode(items) for encode, items in jobs]
    module.forget_reasoning()  # the threads generate again, under each other's feet
    mode = torch.backends.mkldnn.matmul.fp32_precision
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda job: job[0](job[1], batch_size=2), jobs))
    for expected, got in zip(alone, together):
        assert cosines(expected, got).min() > 0.9999
    assert torch.backends.mkldnn.matmul.fp32_precision == mode, "the process-wide matmul mode is restored"


def test_control_tokens_typed_in_user_text_stay_text(tiny_model):
    module = tiny_model[0]
    text = f"what is {EMBED_TOKEN} and <|im_end|> here"
    for task in ("query", "document"):
        features = module.preprocess([text], task=task, reasoning=True if task == "query" else None)
        ids = features["input_ids"][0]
        user = ids[~features["answer_mask"][0].bool()].tolist()
        template = module.prompts.template(module.embedding_prompt if task == "document" else module.reasoning_prompt)
        text_ids = user[len(template[0]) : len(user) - len(template[1])]
        assert module.embed_token_id not in text_ids and module.tokenizer.eos_token_id not in text_ids
        assert module.tokenizer.decode(text_ids) == text
    assert np.isfinite(tiny_model.encode_query([text])).all()


def test_long_texts_are_cut_before_they_are_tokenized_whole(tiny_model, texts):
    import time

    module = tiny_model[0]
    ordinary = " ".join(texts["documents"] * 50)  # a few thousand tokens of real text
    assert module.prompts.encode_text(ordinary, 100) == module.prompts.encode(ordinary)[:100]
    short, huge = ordinary[:600], (ordinary + " ") * (10_000_000 // len(ordinary) + 1)
    assert len(huge) >= 10_000_000

    def cost(text: str) -> float:
        start = time.perf_counter()
        for _ in range(5):
            module.preprocess([text], task="document")
        return time.perf_counter() - start

    cost(short)  # warm-up
    assert cost(huge) < 2 * cost(short) + 0.01


def test_normalize_off_gives_the_same_directions_unscaled(tiny_llm, texts):
    raw = SentenceTransformer(modules=[SearchR3(tiny_llm, max_seq_length=192, max_reasoning_tokens=8, normalize=False)])
    unit = SentenceTransformer(modules=[SearchR3(tiny_llm, max_seq_length=192, max_reasoning_tokens=8)])
    unscaled = raw.encode_document(texts["documents"])
    assert not np.allclose(np.linalg.norm(unscaled, axis=1), 1.0)
    assert cosines(unscaled, unit.encode_document(texts["documents"])).min() > 0.9999


@pytest.mark.parametrize(
    "setting, value, error",
    [("max_reasoning_tokens", 0, ValueError), ("precision", "fp8", ValueError), ("reasoning", "yes", TypeError)],
)
def test_settings_out_of_range_are_named(tiny_llm, setting, value, error):
    with pytest.raises(error, match=setting):
        SearchR3(tiny_llm, **{setting: value})


def test_prompt_names_route_the_side(tiny_llm, texts):
    from st_search_r3.settings import PROMPT_NAMES, side_prompts

    module = SearchR3(tiny_llm, max_reasoning_tokens=8, max_seq_length=192, reasoning=True)
    model = SentenceTransformer(modules=[module], similarity_fn_name="cosine", prompts=side_prompts())
    assert set(model.prompts) == set(PROMPT_NAMES)
    queries, documents = texts["queries"][:3], texts["documents"][:3]
    reasoned = model.encode_query(queries)
    np.testing.assert_allclose(model.encode(queries, prompt_name="query"), reasoned, atol=1e-5)  # remembered reasoning
    assert np.abs(reasoned - model.encode_document(queries)).max() > 1e-3  # the sides differ with reasoning on
    for name in ("document", "passage", "text", "corpus"):
        np.testing.assert_array_equal(model.encode(documents, prompt_name=name), model.encode_document(documents))
    np.testing.assert_array_equal(model.encode(documents), model.encode_document(documents))
    with pytest.raises(ValueError, match="applies to queries"):
        model.encode(queries, reasoning=True)
    with pytest.raises(ValueError, match="not found"):
        model.encode(queries, prompt_name="search_query")
    with pytest.raises(ValueError, match="document side"):
        model.encode_query(queries, prompt_name="text")
