from __future__ import annotations

from transformers import AutoModelForCausalLM, AutoTokenizer

from st_search_r3.prompting import EMBED_TOKEN, PromptBuilder, add_embed_token


def test_embed_token_is_added_once_and_starts_at_the_mean_row(tiny_llm):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm)
    model = AutoModelForCausalLM.from_pretrained(tiny_llm)
    rows = model.get_input_embeddings().weight.shape[0]
    token_id = add_embed_token(tokenizer, model)
    weight = model.get_input_embeddings().weight
    assert weight.shape[0] == rows + 1 and token_id == rows
    assert tokenizer.convert_ids_to_tokens(token_id) == EMBED_TOKEN
    assert weight[token_id].allclose(weight[:token_id].mean(0))
    assert add_embed_token(tokenizer, model) == token_id
    assert model.get_input_embeddings().weight.shape[0] == rows + 1, "no second resize"


def test_prompt_without_a_chat_template_still_has_the_instruction_first(tiny_llm):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm)
    tokenizer.chat_template = None
    builder = PromptBuilder(tokenizer, max_seq_length=64)
    text = tokenizer.decode(builder.prompt_ids("a wild cat", "Embed this."))
    assert text.startswith("Embed this.") and "a wild cat" in text


def test_truncation_keeps_the_head_of_the_text(tiny_llm):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm)
    builder = PromptBuilder(tokenizer, max_seq_length=40)
    ids = builder.prompt_ids("first words of a text " * 50, "Embed this.", reserve=5)
    assert len(ids) == 35
    assert "first words" in tokenizer.decode(ids) and tokenizer.decode(ids).endswith("assistant\n")
