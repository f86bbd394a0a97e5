"""Turning texts into token ids for the reason-then-embed prompts.

Every prompt is ``chat_template(system, user=text)`` followed by the assistant turn. Texts are tokenized
on their own and spliced between the template's prefix and suffix, so an over-long text is truncated
inside the user turn (its head is kept) while the instruction and the ``<|embed_token|>`` at the end
always survive. A user's text is plain text: ``<|embed_token|>`` or ``<|im_end|>`` typed inside it is
tokenized as characters, never as the control token, and only its head is tokenized, so a 10 MB text
costs what a short one does.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase

from st_search_r3.settings import EMBED_TOKEN

_MARKER = "\x00TEXT\x00"


def add_embed_token(tokenizer: PreTrainedTokenizerBase, model) -> int:
    """Adds ``<|embed_token|>`` as a special token; resizes the embeddings only when the vocab grew.

    The new row starts as the mean of the existing rows, a neutral point the model has
    seen, rather than a random vector.

    Returns:
        The token's id.
    """
    if EMBED_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_tokens([EMBED_TOKEN], special_tokens=True)
    token_id = tokenizer.convert_tokens_to_ids(EMBED_TOKEN)
    if token_id >= model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        with torch.no_grad():
            for layer in {model.get_input_embeddings(), model.get_output_embeddings()} - {None}:
                layer.weight[token_id:] = layer.weight[:token_id].mean(dim=0)
    return token_id


class PromptBuilder:
    """Builds the token ids of embedding and reasoning prompts for one tokenizer.

    Args:
        tokenizer: The LLM's tokenizer (``<|embed_token|>`` already added).
        max_seq_length: Longest prompt in tokens, template included; texts are cut to fit.
    """

    TOKENS_PAST_CUT = 16

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_seq_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.embed_token_id = tokenizer.convert_tokens_to_ids(EMBED_TOKEN)
        self._templates: dict[str, tuple[list[int], list[int]]] = {}

    def template(self, system_prompt: str) -> tuple[list[int], list[int]]:
        """Token ids before and after the user text, for one system prompt (memoised)."""
        if system_prompt not in self._templates:
            if self.tokenizer.chat_template:
                messages = [{"role": "system", "content": system_prompt}, {"role": "user", "content": _MARKER}]
                rendered = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            else:
                rendered = f"{system_prompt}\n\n{_MARKER}\n\n"
            before, after = rendered.split(_MARKER)
            self._templates[system_prompt] = (self.encode(before), self.encode(after))
        return self._templates[system_prompt]

    def encode(self, text: str) -> list[int]:
        """Token ids of the package's own text (template parts, the answer prefix): special tokens stay special."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_text(self, text: str, max_tokens: int | None = None) -> list[int]:
        """Token ids of a user's text, special-token strings in it split like any other characters, cut to
        ``max_tokens``.

        Only a head of the text is tokenized: 8 characters per token kept, grown fourfold until it yields
        ``TOKENS_PAST_CUT`` tokens more than are kept (or is the whole text), so that the kept tokens are
        those of the whole text whenever the word at the cut spans fewer tokens than that.
        """
        if max_tokens is None:
            return self._text_ids(text)
        chars = 8 * (max_tokens + self.TOKENS_PAST_CUT)
        while True:
            ids = self._text_ids(text[:chars])
            if chars >= len(text) or len(ids) > max_tokens + self.TOKENS_PAST_CUT:
                return ids[:max_tokens]
            chars *= 4

    def _text_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]

    def prompt_ids(self, text: str, system_prompt: str, reserve: int = 0) -> list[int]:
        """Chat prompt ids ending at the start of the assistant turn.

        Args:
            text: The user text; its tail is cut when the prompt would exceed ``max_seq_length - reserve``.
            system_prompt: The system message.
            reserve: Tokens to keep free after the prompt (the reasoning and the answer).
        """
        before, after = self.template(system_prompt)
        budget = self.max_seq_length - reserve - len(before) - len(after)
        if budget < 0:
            raise ValueError(
                f"max_seq_length={self.max_seq_length} leaves no room for the text: the template takes "
                f"{len(before) + len(after)} tokens and {reserve} are reserved for the answer."
            )
        return before + self.encode_text(text, budget) + after
