"""The Search-R3 sentence-transformers module: a causal LM that reasons, then embeds."""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

try:
    from typing import Self
except ImportError:  # Python < 3.11
    from typing_extensions import Self

import torch
import torch.nn.functional as F
from sentence_transformers.base.modules import InputModule
from tqdm.auto import trange
from transformers import GenerationConfig, LogitsProcessorList, MinNewTokensLengthLogitsProcessor

from st_search_r3 import reasoning as generation
from st_search_r3.base_model import DEFAULT_BASE_MODEL
from st_search_r3.embedding import (
    common_prefix_length,
    embed_after_generation,
    fuse,
    last_token_embedding,
    left_pad,
    length_sorted_hidden_states,
    shared_prefix_hidden_states,
)
from st_search_r3.loading import load_llm
from st_search_r3.packing import cpu_matmul_precision, enable_packing, packed_last_hidden_states
from st_search_r3.prompting import PromptBuilder
from st_search_r3.reading import READING_PROMPT, read_prompt_ids
from st_search_r3.reading import search as reading_search
from st_search_r3.reasoning_memory import ReasoningMemory, Trace
from st_search_r3.settings import ANSWER_PREFIX, EMBEDDING_PROMPT, MARKER_SIDES, REASONING_PROMPT, check_settings
from st_search_r3.stop_head import StopHead

# Settings that never reach a document vector (indexing.model_identity leaves them out).
QUERY_ONLY_SETTINGS = {
    "reasoning",
    "max_reasoning_tokens",
    "fuse_direct_embedding",
    "repetition_penalty",
    "no_repeat_ngram_size",
    "reasoning_prompt",
    "reasoning_memory_size",
    "reading_prompt",
    "read_top_k",
    "read_passage_tokens",
    "read_fuse_direct",
}
# The paths of query_mode: one pass (documents; queries with reasoning off), reasoning, or the model's choice.
QUERY_MODES = (False, True, "auto")
# Rows per forward pass when training on a CPU (length-sorted groups): 8 removes most of a batch's padding
# while each matrix product still has a few hundred token rows.
TRAINING_ROWS_PER_PASS = 8


class SearchR3(InputModule):
    """Embeds texts with a causal LM at the hidden state of ``<|embed_token|>`` (Search-R3).

    Queries (``encode_query``, ``task="query"``) with reasoning on are answered first: the LLM writes a short
    analysis under ``reasoning_prompt`` by greedy decoding, then ``<|embed_token|>`` follows (appended when the
    model did not emit it) and its last-layer hidden state, computed with one extra decode step on the
    generation's KV cache, is the embedding. Documents (``encode_document``, ``encode`` without a task) and
    queries with reasoning off take one forward pass over ``chat(embedding_prompt, text) + answer_prefix +
    <|embed_token|>``; at inference that pass runs the template prefix once and packs the texts without
    padding (:mod:`st_search_r3.packing`).

    With ``reasoning="auto"`` the model decides per query: its first token after the reasoning prompt is computed
    in one prefill, and a query whose first token is ``<|embed_token|>`` ("no reasoning needed") gets the direct
    vector, exactly as with reasoning off; the others reason and embed as above. The decision is the logit of
    the token's own output row when the model folder has one (:class:`~st_search_r3.stop_head.StopHead`, saved
    as ``stop_head.safetensors``), which also ends the reasoning it chose to write.

    Reasoning that reads (:meth:`search`, or ``encode_query`` of ``(query, [passages])`` pairs): the model reads the
    query and the passages a first search with its direct vector found (each cut to ``read_passage_tokens``) under
    ``reading_prompt``, and the embed token's state is the query's second vector. A reader adapter saved with the
    model (``reader/``, :mod:`st_search_r3.reader`) is on for read prompts only, so documents and direct query
    vectors are those of the model without it.

    The reasoning behind each query vector is kept per query (:meth:`reasoning_of`); re-encoding a query whose
    reasoning is known skips generation. That memory is dropped as soon as any weight of the LLM changes in
    place (training), holds at most ``reasoning_memory_size`` queries and is safe to use from several threads.

    Args:
        model_name_or_path: The causal LM: ``"SmolLM2-135M-Instruct"`` (the packaged default), a local folder
            or a Hugging Face id, or a folder with a LoRA adapter saved by training.
        reasoning: Whether queries reason before embedding: ``True`` always, ``False`` never, ``"auto"`` where
            the model's first token says so. Overridable per call: ``model.encode_query(texts, reasoning=False)``.
        max_reasoning_tokens: Most tokens of reasoning per query; ``<|embed_token|>`` follows after them.
        fuse_direct_embedding: With reasoning, the query vector is the normalised sum of the embedding after the
            reasoning and the query's direct (reasoning-off) embedding: two views of one query, as O1-Embedder
            aggregates over its thoughts. The direct view costs one short forward pass.
        repetition_penalty: Greedy reasoning's penalty on tokens it already wrote (1.0: none; CTRL's 1.2 is
            the usual guard). Only generated tokens count, not the prompt's.
        no_repeat_ngram_size: Greedy reasoning never repeats an n-gram of its own of this size (0: off).
        max_seq_length: Longest prompt in tokens (template included, reasoning budget reserved for queries that
            reason); longer texts lose their tail, never the instruction or the embed token.
        reasoning_prompt: System prompt of queries that reason.
        embedding_prompt: System prompt of documents, and of queries when reasoning is off.
        answer_prefix: Assistant text before ``<|embed_token|>`` when embedding without reasoning.
        reading_prompt: System prompt of read queries (a query and its first search's passages).
        read_top_k: Passages of the first search that :meth:`search` has the model read.
        read_passage_tokens: Tokens kept of each passage read.
        read_fuse_direct: The read query's vector is the normalised sum of the vector after reading and the
            query's direct vector (the reader learns what to add to the first search's query), else the former.
        normalize: L2-normalise the embeddings.
        reasoning_memory_size: Most queries whose reasoning is remembered (0: none).
        precision: ``"float32"`` weights (batched and one-by-one vectors agree to a cosine > 0.9999), or
            ``"bfloat16"`` weights for inference: faster on CPUs with bf16 support, but rounding then depends
            on the batch, and greedy reasoning can change with batch composition.
        matmul_precision: With float32 weights, how the one-pass path multiplies on CPU: ``"bfloat16"`` rounds
            the inputs of each matrix product to bf16 and accumulates in float32 (oneDNN's bf16 math mode,
            ~1.6x faster with AMX or AVX512-BF16; vectors stay batch-invariant), ``"float32"`` is exact.
        model_kwargs: Passed to ``AutoModelForCausalLM.from_pretrained`` (e.g. ``{"dtype": torch.bfloat16}``).
        processor_kwargs: Passed to ``AutoTokenizer.from_pretrained``.
    """

    config_file_name = "search_r3_config.json"
    config_keys = [
        "reasoning",
        "max_reasoning_tokens",
        "fuse_direct_embedding",
        "repetition_penalty",
        "no_repeat_ngram_size",
        "max_seq_length",
        "reasoning_prompt",
        "embedding_prompt",
        "answer_prefix",
        "reading_prompt",
        "read_top_k",
        "read_passage_tokens",
        "read_fuse_direct",
        "normalize",
        "reasoning_memory_size",
        "precision",
        "matmul_precision",
    ]
    forward_kwargs = {"task", "reasoning"}
    save_in_root = True

    def __init__(
        self,
        model_name_or_path: str = DEFAULT_BASE_MODEL,
        reasoning: bool | str = True,
        max_reasoning_tokens: int = 128,
        fuse_direct_embedding: bool = False,
        repetition_penalty: float = 1.0,
        no_repeat_ngram_size: int = 0,
        max_seq_length: int = 512,
        reasoning_prompt: str = REASONING_PROMPT,
        embedding_prompt: str = EMBEDDING_PROMPT,
        answer_prefix: str = ANSWER_PREFIX,
        reading_prompt: str = READING_PROMPT,
        read_top_k: int = 3,
        read_passage_tokens: int = 64,
        read_fuse_direct: bool = True,
        normalize: bool = True,
        reasoning_memory_size: int = 100_000,
        precision: str = "float32",
        matmul_precision: str = "bfloat16",
        model_kwargs: dict[str, Any] | None = None,
        processor_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        check_settings(**{key: value for key, value in locals().items() if key in self.config_keys})
        self.reasoning = reasoning
        self.max_reasoning_tokens = max_reasoning_tokens
        self.fuse_direct_embedding = fuse_direct_embedding
        self.repetition_penalty = repetition_penalty
        self.no_repeat_ngram_size = no_repeat_ngram_size
        self.reasoning_prompt = reasoning_prompt
        self.embedding_prompt = embedding_prompt
        self.answer_prefix = answer_prefix
        self.reading_prompt = reading_prompt
        self.read_top_k = read_top_k
        self.read_passage_tokens = read_passage_tokens
        self.read_fuse_direct = read_fuse_direct
        self.normalize = normalize
        self.reasoning_memory_size = reasoning_memory_size
        self.precision = precision
        self.matmul_precision = matmul_precision

        self.tokenizer, self.auto_model, self.embed_token_id = load_llm(
            model_name_or_path, model_kwargs, processor_kwargs
        )
        if precision == "bfloat16":
            self.auto_model.to(torch.bfloat16)
        local = os.path.isdir(model_name_or_path)
        self.stop_head = StopHead.load(model_name_or_path) if local else None
        self.reader = self._load_reader(model_name_or_path) if local else None
        self.prompts = PromptBuilder(self.tokenizer, max_seq_length)
        self.packs = enable_packing(self.auto_model)
        self._memory = ReasoningMemory(reasoning_memory_size)
        self.max_seq_length = max_seq_length  # checked by the setter

    def _load_reader(self, folder: str):
        """The folder's reader adapter (:mod:`st_search_r3.reader`), on the LLM with any training adapter merged."""
        if not (Path(folder) / "reader").is_dir():
            return None
        from st_search_r3.reader import Reader  # PEFT is imported only for models that have a reader

        self.merge_adapter()
        return Reader.load(self.auto_model, folder)

    def merge_adapter(self) -> None:
        """Merges a training LoRA (a PEFT model) into the LLM's weights, as ``st-search-r3 install`` ships it; a
        plain LLM stays as it is."""
        if hasattr(self.auto_model, "merge_and_unload"):
            self.auto_model = self.auto_model.merge_and_unload()

    @property
    def max_seq_length(self) -> int:
        """Longest prompt in tokens, template included. ``model.max_seq_length = n`` (sentence-transformers sets
        it on this module) applies to the next call."""
        return self.prompts.max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        check_settings(**{**self.get_config_dict(), "max_seq_length": value})
        previous, self.prompts.max_seq_length = self.prompts.max_seq_length, value
        # Truncation must leave room for the answer (and the reasoning, when it is on): fail now, not on the
        # first text. With reasoning off, a query that asks for it later gets the same error then.
        try:
            if self.reasoning:
                self.preprocess([""], task="query", reasoning=True)
            self.preprocess([""], task="document")
        except ValueError:
            self.prompts.max_seq_length = previous
            raise

    # ----------------------------------------------------------------------------------------- inputs

    def preprocess(
        self,
        inputs: Sequence[str | tuple[str, str]],
        prompt: str | None = None,
        task: str | None = None,
        reasoning: bool | None = None,
        read_fuse_direct: bool | None = None,
        **kwargs,
    ) -> dict[str, torch.Tensor]:
        """Token ids of a batch, left-padded.

        Args:
            inputs: Texts. An empty string is embedded as an empty user turn. For reasoning queries an input
                may also be a ``(query, reasoning)`` pair: the given reasoning is used instead of generating one
                (training uses this with each query's cached reasoning).
            prompt: A side's marker (what ``prompt_name="query"``, ``"document"``, ``"passage"``, ``"text"`` or
                ``"corpus"`` resolves to, see :func:`~st_search_r3.settings.side_prompts`) sets ``task``; any other
                sentence-transformers prompt is prepended to each text.
            task: ``"query"`` reasons (unless reasoning is off); anything else embeds directly.
            reasoning: Overrides the module's ``reasoning`` setting for this call (``True``, ``False``, ``"auto"``);
                queries only.
            read_fuse_direct: Overrides ``read_fuse_direct`` for ``(query, [passages])`` items (:meth:`search` has
                the direct vectors already and fuses them itself).

        Returns:
            ``input_ids``, ``attention_mask`` and ``answer_mask`` (1 on the tokens the model writes: the
            reasoning or answer prefix, and ``<|embed_token|>``). A reasoning query whose reasoning is known
            (given, or remembered) ends with ``<|embed_token|>``; otherwise it ends at the start of the
            assistant turn and is answered in :meth:`forward`. With ``fuse_direct_embedding`` or ``"auto"``
            reasoning, reasoning queries also get ``direct_ids`` and ``direct_mask``: the same texts in the
            reasoning-off format (named so that no trainer takes them for a column of their own). And
            ``query_mode``, the path :meth:`forward` takes (:data:`QUERY_MODES`).
        """
        if prompt in MARKER_SIDES:
            if task is not None and task != MARKER_SIDES[prompt]:
                raise ValueError(f"the prompt {prompt!r} is for the {MARKER_SIDES[prompt]} side, but task={task!r}")
            task, prompt = MARKER_SIDES[prompt], None
        if reasoning is not None and task != "query":
            raise ValueError(
                "reasoning= applies to queries: call encode_query, or encode(..., prompt_name='query'); "
                f"this call embeds {'documents' if task is None else repr(task)}"
            )
        items = self._check_inputs(inputs, allow_pairs=task == "query")
        if prompt:
            items = [(prompt + text, extra) for text, extra in items]
        if any(isinstance(extra, tuple) for _, extra in items):
            return self._read_features(items, self.read_fuse_direct if read_fuse_direct is None else read_fuse_direct)
        mode = self._reasoning_mode(task, reasoning)
        features = self._query_or_document_features(items, mode)
        features["query_mode"] = torch.full((len(items),), QUERY_MODES.index(mode))
        return features

    def _query_or_document_features(self, items, mode: bool | str) -> dict[str, torch.Tensor]:
        """Features of texts embedded in one pass (``mode`` False) or of queries that reason (True, "auto")."""
        reasons = bool(mode)
        if not reasons and any(extra is not None for _, extra in items):
            raise TypeError("a (query, reasoning) pair needs reasoning on; pass plain strings with reasoning off")
        if reasons:
            memory = self._current_memory()
            sequences = []
            for text, thought in items:
                prompt_ids = self.query_prompt_ids(text)
                if thought is not None:
                    answer = self.prompts.encode_text(thought, self.max_reasoning_tokens) + [self.embed_token_id]
                elif (remembered := memory.get(self._memory_key(prompt_ids, mode))) is not None:
                    answer = [*remembered.token_ids, self.embed_token_id]
                else:
                    answer = []
                sequences.append((prompt_ids, answer))
        else:
            sequences = self._direct_sequences([text for text, _ in items])
        input_ids, attention_mask = left_pad([p + a for p, a in sequences], self.tokenizer.pad_token_id)
        answer_mask, _ = left_pad([[0] * len(p) + [1] * len(a) for p, a in sequences], 0)
        features = {"input_ids": input_ids, "attention_mask": attention_mask, "answer_mask": answer_mask}
        if reasons and (self.fuse_direct_embedding or mode == "auto"):
            features.update(self._direct_features([text for text, _ in items]))
        return features

    def _read_features(
        self, items: list[tuple[str, tuple[str, ...] | str | None]], fuse: bool
    ) -> dict[str, torch.Tensor]:
        """Read prompts of ``(query, passages)`` items (:mod:`st_search_r3.reading`), ``read_mask`` marking them;
        with ``fuse``, the direct prompts too."""
        if not all(isinstance(extra, tuple) for _, extra in items):
            raise TypeError("a batch mixes (query, passages) items with other inputs: give every query its passages")
        answer = self.direct_answer_ids()
        sequences = [
            read_prompt_ids(self.prompts, text, passages, self.reading_prompt, self.read_passage_tokens, len(answer))
            + answer
            for text, passages in items
        ]
        input_ids, attention_mask = left_pad(sequences, self.tokenizer.pad_token_id)
        features = {"input_ids": input_ids, "attention_mask": attention_mask, "read_mask": attention_mask[:, -1]}
        if fuse:
            features.update(self._direct_features([text for text, _ in items]))
        return features

    def _direct_features(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """``direct_ids`` and ``direct_mask``: the texts in the reasoning-off format, to fuse with another view."""
        direct = self._direct_sequences(texts)
        direct_ids, direct_mask = left_pad([p + a for p, a in direct], self.tokenizer.pad_token_id)
        return {"direct_ids": direct_ids, "direct_mask": direct_mask}

    def direct_answer_ids(self) -> list[int]:
        """Token ids of the answer of texts embedded without reasoning: ``answer_prefix`` and the embed token."""
        return self.prompts.encode(self.answer_prefix) + [self.embed_token_id]

    def _direct_sequences(self, texts: list[str]) -> list[tuple[list[int], list[int]]]:
        """``(prompt, answer)`` ids of texts embedded without reasoning (documents; queries with it off)."""
        answer = self.direct_answer_ids()
        return [(self.prompts.prompt_ids(text, self.embedding_prompt, reserve=len(answer)), answer) for text in texts]

    def query_prompt_ids(self, text: str) -> list[int]:
        """Token ids of the prompt a query is answered from (generation starts after them)."""
        reserve = self.max_reasoning_tokens + 2  # the reasoning, a token fed late, and the embed token
        return self.prompts.prompt_ids(text, self.reasoning_prompt, reserve=reserve)

    def _query_mode(self, features: dict[str, torch.Tensor], task: str | None, reasoning) -> bool | str:
        """The path :meth:`preprocess` chose for these features; from ``task`` and ``reasoning`` for features built
        without it."""
        if "query_mode" in features:
            return QUERY_MODES[int(features["query_mode"][0])]
        return self._reasoning_mode(task, reasoning)

    def _reasoning_mode(self, task: str | None, reasoning: bool | str | None) -> bool | str:
        """``False``, ``True`` (always reason) or ``"auto"`` for a call with these ``task`` and ``reasoning``."""
        if task != "query":
            return False
        mode = self.reasoning if reasoning is None else reasoning
        if mode not in (True, False, "auto"):
            raise ValueError(f"reasoning must be True, False or 'auto', got {mode!r}")
        return mode

    @staticmethod
    def _check_inputs(inputs, allow_pairs: bool) -> list[tuple[str, str | tuple[str, ...] | None]]:
        """``(text, reasoning, passages (a tuple) or None)`` per input; a clear error for anything but strings
        (and, for queries, ``(query, reasoning)`` and ``(query, [passages])`` pairs)."""
        if isinstance(inputs, str) or not isinstance(inputs, Sequence):
            raise TypeError(f"Expected a list of strings, got {type(inputs).__name__}")
        if len(inputs) == 0:
            raise ValueError("Expected at least one text, got an empty list")
        items = []
        for index, item in enumerate(inputs):
            if isinstance(item, str):
                items.append((item, None))
            elif allow_pairs and isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str):
                query, extra = item
                if isinstance(extra, str):
                    items.append((query, extra))
                elif isinstance(extra, (tuple, list)) and all(isinstance(x, str) for x in extra):
                    items.append((query, tuple(extra)))
                else:
                    raise TypeError(
                        f"Input {index}: the second element must be a reasoning (str) or passages (a list of str), "
                        f"got {type(extra).__name__}"
                    )
            else:
                expected = "str, a (query, reasoning) pair or a (query, [passages]) pair" if allow_pairs else "str"
                raise TypeError(f"Input {index} is {type(item).__name__}, expected {expected}: {item!r:.80}")
        return items

    # ---------------------------------------------------------------------------------------- forward

    def forward(
        self, features: dict[str, torch.Tensor], task: str | None = None, reasoning: bool | None = None, **kwargs
    ) -> dict[str, torch.Tensor]:
        """Sets ``features["sentence_embedding"]`` (float32, one row per text), computed by the path
        :meth:`forward_path` names; the training path also sets ``states_after_prefix`` and ``prefix_length``."""
        input_ids, attention_mask = features["input_ids"], features["attention_mask"]
        path = self.forward_path(features, task, reasoning)
        with self._matmul_mode(input_ids, None):
            if path == "read":
                embeddings = self._embed_read(features)
            elif path == "train":
                embeddings = self._forward_for_training(features)
            elif path in ("reason", "auto"):
                embeddings = self._embed_queries(features, auto=path == "auto")
            else:
                embeddings = self._embed_in_one_pass(input_ids, attention_mask)
        embeddings = embeddings.float()
        features["sentence_embedding"] = F.normalize(embeddings, dim=-1) if self.normalize else embeddings
        return features

    def forward_path(self, features: dict[str, torch.Tensor], task: str | None, reasoning) -> str:
        """Which computation :meth:`forward` runs on these features:

        - ``"read"``: read prompts (a query and the passages of a first search; ``read_mask``), reader on;
        - ``"train"``: with gradients, prompts that end with ``<|embed_token|>`` and carry an ``answer_mask``
          (a training batch): differentiable, and the loss's LM terms read the answer from its states;
        - ``"reason"`` / ``"auto"``: queries with reasoning on (or auto): those whose reasoning is given (or
          remembered) take one pass, the others reason first, by generation (under auto, where the model chooses
          to), then the token;
        - ``"one_pass"``: prompts that end with the token (documents, queries with reasoning off), in one forward
          pass.
        """
        if "read_mask" in features:
            return "read"
        ends_with_token = bool((features["input_ids"][:, -1] == self.embed_token_id).all())
        if torch.is_grad_enabled() and "answer_mask" in features and ends_with_token:
            return "train"
        mode = self._query_mode(features, task, reasoning)
        return "one_pass" if not mode else "auto" if mode == "auto" else "reason"

    def _forward_for_training(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Differentiable embeddings of padded rows whose shared prefix runs once; sets ``states_after_prefix``
        (the last layer's states of every position after the shared prefix) and ``prefix_length``, from which the
        loss's LM terms read the answer. Fused with the direct view where ``direct_ids`` are given, as inference
        embeds such queries."""
        input_ids, attention_mask, answers = features["input_ids"], features["attention_mask"], features["answer_mask"]
        # The prefix stops before the shortest prompt ends, so every answer token is predicted from a computed state.
        shortest_prompt = int((attention_mask.sum(1) - answers.sum(1)).min())
        prefix_length = common_prefix_length(input_ids, attention_mask, limit=shortest_prompt - 1)
        # On a CPU, time follows tokens, padding included; an accelerator is better served by one wide batch.
        rows = TRAINING_ROWS_PER_PASS if input_ids.device.type == "cpu" else len(input_ids)
        hidden = length_sorted_hidden_states(self.auto_model, input_ids, attention_mask, prefix_length, rows)
        embeddings = hidden[:, -1]
        if "direct_ids" in features:
            ids, mask = features["direct_ids"], features["direct_mask"]
            direct_prefix = common_prefix_length(ids, mask, limit=int(mask.sum(1).min()) - 1)
            embeddings = fuse(embeddings, shared_prefix_hidden_states(self.auto_model, ids, mask, direct_prefix)[:, -1])
        features.update(states_after_prefix=hidden, prefix_length=prefix_length)
        return embeddings

    @staticmethod
    def _matmul_mode(input_ids: torch.Tensor, precision: str | None):
        """The CPU matmul mode of a forward (:func:`~st_search_r3.packing.cpu_matmul_precision`); none on GPUs."""
        return cpu_matmul_precision(precision) if input_ids.device.type == "cpu" else nullcontext()

    def _embed_read(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """The embed token's hidden state of read prompts, with the reader adapter on where the model has one;
        fused with the direct view (reader off) where ``direct_ids`` are given."""
        with self.reader.active() if self.reader is not None else nullcontext():
            read = self._last_hidden_states(features["input_ids"], features["attention_mask"], self.reading_prompt)
        if "direct_ids" not in features:
            return read
        with torch.no_grad():  # the model's own direct vector: nothing in it trains
            direct = self._embed_in_one_pass(features["direct_ids"], features["direct_mask"])
        return fuse(read, direct)

    def _embed_in_one_pass(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The embed token's hidden state of prompts that end with it."""
        return self._last_hidden_states(input_ids, attention_mask, self.embedding_prompt)

    def _last_hidden_states(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, system_prompt: str
    ) -> torch.Tensor:
        """The last position's final hidden state of left-padded prompts made with ``system_prompt``. The
        template prefix runs once per batch; it is cut at the template's own length, so a text alone and in a
        batch is split alike."""
        template_length = len(self.prompts.template(system_prompt)[0])
        prefix_length = common_prefix_length(input_ids, attention_mask, limit=template_length)
        if self.packs and not torch.is_grad_enabled():
            with self._matmul_mode(input_ids, self.matmul_precision):
                # Rounding the packed row to 64 tokens means fewer distinct matrix shapes, each of which oneDNN
                # compiles and caches: 12% less memory growth over 5,000 WordNet documents.
                return packed_last_hidden_states(
                    self.auto_model, input_ids, attention_mask, prefix_length, round_tokens_to=64
                )
        # Training: padded rows, differentiable through the shared prefix.
        return shared_prefix_hidden_states(self.auto_model, input_ids, attention_mask, prefix_length)[:, -1]

    def _embed_queries(self, features: dict[str, torch.Tensor], auto: bool) -> torch.Tensor:
        """One forward pass for queries whose reasoning is known; reasoning first for the others. In ``auto``
        mode a query without reasoning (it stopped at once, or was given an empty one) takes the direct view."""
        input_ids, attention_mask = features["input_ids"], features["attention_mask"]
        known = input_ids[:, -1] == self.embed_token_id
        at_once = known & (features["answer_mask"].sum(dim=1) == 1) if auto else torch.zeros_like(known)
        embeddings = torch.zeros(len(input_ids), self.auto_model.config.hidden_size, device=input_ids.device)
        reason = known & ~at_once
        if reason.any():
            given = last_token_embedding(self.auto_model, input_ids[reason], attention_mask[reason])
            embeddings[reason] = given.float()
        if not known.all():
            vectors, _, stopped = self._reason_and_embed(input_ids[~known], attention_mask[~known], auto)
            embeddings[~known] = vectors.float()
            at_once[~known] = stopped
        # The direct view: of every query when fusing, else only of those that did not reason.
        rows = torch.ones_like(known) if self.fuse_direct_embedding else at_once
        if rows.any():
            if "direct_ids" not in features:
                raise ValueError("queries without reasoning need direct_ids and direct_mask (see preprocess)")
            direct = self._embed_in_one_pass(features["direct_ids"][rows], features["direct_mask"][rows]).float()
            if self.fuse_direct_embedding:
                embeddings = fuse(embeddings, direct)
            embeddings[at_once] = direct[at_once[rows]]
        return embeddings

    # ------------------------------------------------------------------------------------- reasoning

    def stop_token_ids(self) -> list[int]:
        """Tokens that end the reasoning: ``<|embed_token|>``, EOS and padding."""
        return sorted({self.tokenizer.eos_token_id, self.tokenizer.pad_token_id, self.embed_token_id})

    def reasoning_generation_config(self, **overrides) -> GenerationConfig:
        """Greedy decoding within ``max_reasoning_tokens``, stopping at :meth:`stop_token_ids` (the repetition
        guards come separately: :meth:`reasoning_logits_processors`)."""
        return generation.generation_config(
            self.max_reasoning_tokens, self.stop_token_ids(), self.tokenizer.pad_token_id, **overrides
        )

    def reasoning_logits_processors(self, prompt_width: int) -> LogitsProcessorList:
        """The repetition guards over the generated tokens only (:func:`st_search_r3.reasoning.repetition_guards`),
        and no stop token as the first one: a query that reasons writes at least one token."""
        processors = generation.repetition_guards(self.repetition_penalty, self.no_repeat_ngram_size, prompt_width)
        processors.append(MinNewTokensLengthLogitsProcessor(prompt_width, 1, self.stop_token_ids()))
        return processors

    def _stop_head_attached(self):
        """The stop head in place of the LM head's ``<|embed_token|>`` logit, when the model has one."""
        if self.stop_head is None:
            return nullcontext()
        return self.stop_head.attached(self.auto_model.get_output_embeddings(), self.embed_token_id)

    def first_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The greedy first token after each (left-padded) query prompt, in one prefill that runs the template
        once: ``<|embed_token|>`` means the model chose not to reason."""
        hidden = self._last_hidden_states(input_ids, attention_mask, self.reasoning_prompt)
        with self._stop_head_attached():
            logits = self.auto_model.get_output_embeddings()(hidden.to(self.auto_model.dtype))
        return logits.argmax(dim=-1)

    def _reason_and_embed(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, auto: bool = False
    ) -> tuple[torch.Tensor, list[Trace], torch.Tensor]:
        """Greedy reasoning, then the embed token's hidden state from the generation's KV cache. In ``auto`` mode
        rows whose first token is a stop token (:meth:`first_tokens`) are not generated: their trace is empty and
        their row of the returned embeddings is zero, to be filled by the caller.

        Returns:
            The embeddings, each row's trace, and which rows stopped at once.
        """
        n = len(input_ids)
        stops = torch.tensor(self.stop_token_ids(), device=input_ids.device)
        first = self.first_tokens(input_ids, attention_mask) if auto else torch.zeros_like(input_ids[:, 0])
        at_once = torch.isin(first, stops) if auto else torch.zeros(n, dtype=torch.bool, device=input_ids.device)
        embeddings = torch.zeros(n, self.auto_model.config.hidden_size, device=input_ids.device)
        traces = [Trace((), int(token)) for token in first.tolist()]
        if not at_once.all():
            rows = (~at_once).nonzero().flatten()
            # The rows left may share leading padding columns: drop them, generation starts after the widest prompt.
            padding = int((attention_mask[rows].sum(dim=0) == 0).sum())
            ids, mask = input_ids[rows, padding:], attention_mask[rows, padding:]
            with self._stop_head_attached():
                output = self.auto_model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    generation_config=self.reasoning_generation_config(return_dict_in_generate=True, use_cache=True),
                    logits_processor=self.reasoning_logits_processors(ids.shape[1]),
                )
            generated = output.sequences[:, ids.shape[1] :]
            lengths = generation.reasoning_lengths(generated, self.stop_token_ids())
            for row, trace in zip(rows.tolist(), generation.traces(generated, lengths)):
                traces[row] = trace
            embeddings[rows] = embed_after_generation(
                self.auto_model,
                output.cache,
                mask,
                generated,
                lengths,
                self.embed_token_id,
                self.tokenizer.pad_token_id,
            ).float()
        memory = self._current_memory()
        mode = "auto" if auto else True
        for prompt_row, mask_row, trace in zip(input_ids, attention_mask, traces):
            memory.put(self._memory_key(prompt_row[mask_row.bool()].tolist(), mode), trace)
        return embeddings, traces, at_once

    def reasoning_of(self, queries: list[str], batch_size: int = 16, reasoning: bool | str | None = None) -> list[str]:
        """The reasoning text behind each query's vector (what ``encode_query`` generated for it; empty where
        the model chose not to reason).

        Queries that were encoded since the weights last changed cost nothing; the others are reasoned (and
        embedded) now, in batches.

        Args:
            queries: Query texts, exactly as passed to ``encode_query`` (any prompt included).
            batch_size: Batch size for queries that still need reasoning.
            reasoning: ``"auto"`` for the model's own choice, ``True`` for reasoning in any case; by default
                ``"auto"`` if that is the module's setting, else ``True`` (what the model would reason).
        """
        return [
            self.tokenizer.decode(trace.token_ids, skip_special_tokens=True).strip()
            for trace in self.reasoning_traces(queries, batch_size, reasoning)
        ]

    def reasoning_traces(
        self, queries: list[str], batch_size: int = 16, reasoning: bool | str | None = None
    ) -> list[Trace]:
        """Like :meth:`reasoning_of`, as :class:`~st_search_r3.reasoning_memory.Trace` objects: the reasoning's
        token ids and the token that ended it (``<|embed_token|>`` when the model wrote it itself, EOS, or
        ``None`` when the budget ran out). A query that chose not to reason has no ids and ends with the token."""
        mode = reasoning if reasoning is not None else ("auto" if self.reasoning == "auto" else True)
        if mode not in (True, "auto"):
            raise ValueError(f"reasoning must be True or 'auto' for traces, got {mode!r}")
        prompts = [self.query_prompt_ids(text) for text, _ in self._check_inputs(queries, allow_pairs=False)]
        memory = self._current_memory()
        traces = [memory.get(self._memory_key(ids, mode)) for ids in prompts]
        missing = [i for i, trace in enumerate(traces) if trace is None]
        device = self.auto_model.device
        with torch.inference_mode():
            for start in range(0, len(missing), batch_size):
                rows = missing[start : start + batch_size]
                ids, mask = left_pad([prompts[i] for i in rows], self.tokenizer.pad_token_id, device=device)
                with self._matmul_mode(ids, None):
                    for row, trace in zip(rows, self._reason_and_embed(ids, mask, auto=mode == "auto")[1]):
                        traces[row] = trace
        return traces

    def sample_reasonings(
        self, queries: list[str], num_samples: int, temperature: float = 0.8, top_k: int = 20, batch_size: int = 16
    ) -> list[list[str]]:
        """``num_samples`` sampled reasonings per query (best-of-n training targets, not vectors: nothing is
        embedded or remembered). Same prompt, budget and repetition guards as greedy reasoning.

        Args:
            queries: Query texts.
            num_samples: Reasonings drawn per query.
            temperature: Sampling temperature.
            top_k: Sample among this many most likely tokens (docT5query's choice was 10).
            batch_size: Queries per generation call (each expands to ``num_samples`` rows).
        """
        prompts = [self.query_prompt_ids(text) for text, _ in self._check_inputs(queries, allow_pairs=False)]
        config = self.reasoning_generation_config(
            do_sample=True, temperature=temperature, top_k=top_k, num_return_sequences=num_samples
        )
        samples = []
        with torch.inference_mode():
            for start in range(0, len(prompts), batch_size):
                ids, mask = left_pad(
                    prompts[start : start + batch_size], self.tokenizer.pad_token_id, device=self.auto_model.device
                )
                with self._matmul_mode(ids, None), self._stop_head_attached():
                    output = self.auto_model.generate(
                        input_ids=ids,
                        attention_mask=mask,
                        generation_config=config,
                        logits_processor=self.reasoning_logits_processors(ids.shape[1]),
                    )
                generated = output[:, ids.shape[1] :]
                lengths = generation.reasoning_lengths(generated, self.stop_token_ids()).tolist()
                texts = [
                    self.tokenizer.decode(row[:length], skip_special_tokens=True).strip()
                    for row, length in zip(generated, lengths)
                ]
                samples += [texts[i : i + num_samples] for i in range(0, len(texts), num_samples)]
        return samples

    def embed(
        self,
        inputs: Sequence,
        task: str | None = None,
        reasoning: bool | str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool = False,
        **kwargs,
    ) -> torch.Tensor:
        """Vectors of ``inputs`` (float32, one row each, on the CPU): what ``encode_query`` (``task="query"``) or
        ``encode_document`` give, without a ``SentenceTransformer`` around the module. Longest first in batches,
        as sentence-transformers sorts; a text's vector does not depend on its batch. ``kwargs`` go to
        :meth:`preprocess`."""
        from sentence_transformers.base.model import BaseModel

        order = sorted(range(len(inputs)), key=lambda i: -BaseModel._input_length(inputs[i]))
        vectors = [None] * len(inputs)
        device = self.auto_model.device
        with torch.inference_mode():
            for start in trange(0, len(order), batch_size, desc="Batches", disable=not show_progress_bar):
                rows = order[start : start + batch_size]
                features = self.preprocess([inputs[i] for i in rows], task=task, reasoning=reasoning, **kwargs)
                features = {key: value.to(device) for key, value in features.items()}
                embeddings = self(features, task=task, reasoning=reasoning)["sentence_embedding"].cpu()
                for row, vector in zip(rows, embeddings):
                    vectors[row] = vector
        return torch.stack(vectors)

    def search(
        self,
        queries: Sequence[str],
        corpus: Sequence[str],
        top_k: int = 10,
        corpus_embeddings=None,
        reading: bool | None = None,
        batch_size: int = 32,
        show_progress_bar: bool = False,
        lexical_weight: float = 0.0,
    ) -> list[list[dict[str, int | float]]]:
        """Searches ``corpus`` for each query: with ``reading``, the query's direct vector finds the top
        ``read_top_k`` documents, the model reads the query and those passages (:mod:`st_search_r3.reading`), and
        the read vector searches the whole corpus again; without, the direct vector's search alone. Exhaustive
        cosine search (``sentence_transformers.util.semantic_search``).

        Args:
            queries: Query texts.
            corpus: Document texts (the passages read are cut to ``read_passage_tokens`` tokens).
            top_k: Hits per query (fewer when the corpus is smaller).
            corpus_embeddings: The corpus's vectors as ``encode_document`` returns them (numpy or torch,
                normalised or not), so that a corpus is embedded once; embedded here when ``None``.
            reading: Read the first search's passages (``True``) or search with the direct vector only
                (``False``); by default, read where the model has a trained reader (reading untrained lowers
                nDCG@10: docs/evaluation.md).
            batch_size: Texts per forward pass.
            show_progress_bar: Bars over the corpus and the read queries.
            lexical_weight: BM25's share in each search (the first one, whose passages are read, and the one whose
                hits are returned): each document's cosine plus ``lexical_weight`` times its BM25 score over the
                query's best (:mod:`st_search_r3.lexical`; needs ``st-search-r3[lexical]``). 0: cosine only. 0.1
                was chosen on the dev splits (docs/usage.md).

        Returns:
            Per query, ``{"corpus_id": index into corpus, "score": cosine}`` dicts (the hybrid score where
            ``lexical_weight`` > 0), best first: the shape of ``sentence_transformers.util.semantic_search``.
        """
        reading = self.reader is not None if reading is None else reading
        return reading_search(
            self, queries, corpus, top_k, corpus_embeddings, reading, batch_size, show_progress_bar, lexical_weight
        )

    def forget_reasoning(self) -> None:
        """Drops the remembered reasoning, so the next ``encode_query`` generates again."""
        self._memory.clear()

    def _memory_key(self, prompt_ids: list[int], mode: bool | str) -> bytes:
        settings = (self.max_reasoning_tokens, self.repetition_penalty, self.no_repeat_ngram_size, mode == "auto")
        return generation.memory_key(settings, prompt_ids)

    def _current_memory(self) -> ReasoningMemory:
        """The reasoning memory, emptied first if any weight changed since it was filled."""
        # Every in-place update of a parameter (optimizer step, load_state_dict) bumps its version.
        self._memory.check_stamp(tuple(p._version for p in self.parameters()))
        return self._memory

    # ------------------------------------------------------------------------------------ properties

    def document_config(self) -> dict[str, Any]:
        """The settings that reach document vectors (the others shape queries only): what an index depends on."""
        return {key: value for key, value in self.get_config_dict().items() if key not in QUERY_ONLY_SETTINGS}

    def get_embedding_dimension(self) -> int:
        return self.auto_model.config.hidden_size

    def get_max_seq_length(self) -> int:
        return self.max_seq_length

    # ---------------------------------------------------------------------------------- save / load

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        """Saves the LLM (only its adapter when it is a PEFT model), the reader, the tokenizer and the settings."""
        if self.reader is not None:
            self.auto_model.save_pretrained(
                output_path, safe_serialization=safe_serialization, state_dict=self.reader.base_state_dict()
            )
            self.reader.save(output_path)
        else:
            self.auto_model.save_pretrained(output_path, safe_serialization=safe_serialization)
        if self.stop_head is not None:
            self.stop_head.save(output_path)
        self.save_tokenizer(output_path)
        self.save_config(output_path)

    @classmethod
    def load(
        cls,
        model_name_or_path: str,
        subfolder: str = "",
        token: bool | str | None = None,
        cache_folder: str | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        processor_kwargs: dict[str, Any] | None = None,
        **kwargs,
    ) -> Self:
        hub_kwargs = dict(
            subfolder=subfolder,
            token=token,
            cache_folder=cache_folder,
            revision=revision,
            local_files_only=local_files_only,
        )
        config = cls.load_config(model_name_or_path, **hub_kwargs)
        local_path = cls.load_dir_path(model_name_or_path, **hub_kwargs)
        config = {key: value for key, value in config.items() if key in cls.config_keys}
        # The base LLM of an adapter folder is another repository: it is fetched with the same credentials, cache
        # and offline setting (its revision is the one the adapter names), as sentence-transformers' Transformer
        # module passes them to its model.
        hub = {"token": token, "cache_dir": cache_folder, "local_files_only": local_files_only}
        model_kwargs = {**hub, **(model_kwargs or {})}
        processor_kwargs = {**hub, **(processor_kwargs or {})}
        return cls(os.fspath(local_path), model_kwargs=model_kwargs, processor_kwargs=processor_kwargs, **config)
