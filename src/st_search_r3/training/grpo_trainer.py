"""Stage 2: GRPO on the LLM inside search-r3, rewarded by how well each reasoning's embedding retrieves."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sentence_transformers import SentenceTransformer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import GRPOConfig, GRPOTrainer

from st_search_r3.embedding import fuse, last_token_embedding, left_pad
from st_search_r3.training.corpus_index import CorpusIndex
from st_search_r3.training.reward import dcg_reward, format_reward, length_cost

CORPUS_INDEX_DIR = "corpus_index"


class SearchR3GRPOTrainer(GRPOTrainer):
    """TRL's ``GRPOTrainer`` for the LLM of a search-r3 ``SentenceTransformer``.

    For each training query GRPO samples ``num_generations`` reasonings that end at ``<|embed_token|>``
    (EOS or the budget also end them; the token is then appended, as at inference). Each completion's
    embedding is the policy's own last hidden state at that token, computed without gradients right
    after generation (:meth:`_generate`) and handed to the reward functions as the ``embedding``
    column. Three rewards (see :mod:`st_search_r3.training.reward`), weighted by ``args.reward_weights``:
    ``ranking_reward``, nDCG@``ranking_k`` of the query's ``relevant_ids`` in the cached corpus,
    ``format_reward`` and ``length_reward``. A completion that stops at once is a valid rollout: it takes the
    query's direct vector, as ``reasoning="auto"`` does at inference, and ``gain_over_direct`` (logged) is each
    completion's nDCG minus the direct vector's. Where the model has a stop head
    (:class:`~st_search_r3.stop_head.StopHead`) it gives the token's logit while sampling and in the loss; the
    head itself is not trained here (``train/stop.py`` fits it). The corpus cache is refreshed once per step
    before ranking, and saved in every checkpoint (``corpus_index/``). Everything else (loss, LoRA via
    ``peft_config``, accelerate, vLLM) is TRL's.

    Args:
        model: A search-r3 SentenceTransformer; its LLM is trained in place, so ``model`` always encodes
            with the current policy.
        corpus: The cached corpus, encoded with ``model``'s documents path.
        args: GRPO settings; ``max_completion_length`` must be ``max_reasoning_tokens + 1``.
        train_dataset: ``prompt`` (chat messages: the reasoning prompt and the query) and
            ``relevant_ids`` (document ids in ``corpus``).
        ranking_k: Depth of the ranking reward.
        peft_config, callbacks: As for ``GRPOTrainer``.
    """

    def __init__(
        self,
        model: SentenceTransformer,
        corpus: CorpusIndex,
        args: GRPOConfig,
        train_dataset,
        ranking_k: int = 100,
        peft_config=None,
        callbacks=None,
    ) -> None:
        module = model[0]
        if args.max_completion_length != module.max_reasoning_tokens + 1:
            raise ValueError(
                f"max_completion_length must be max_reasoning_tokens + 1 = {module.max_reasoning_tokens + 1} "
                f"(the reasoning and the embed token), got {args.max_completion_length}"
            )
        self.search_r3 = model
        self.corpus = corpus
        self.ranking_k = ranking_k
        self.embed_token_id = module.embed_token_id
        self.max_reasoning_tokens = module.max_reasoning_tokens
        # A completion is finished when it emits the embed token, not only at EOS.
        module.auto_model.generation_config.eos_token_id = module.stop_token_ids()
        if module.stop_head is not None:
            module.stop_head.requires_grad_(False)
            module.stop_head.attach(module.auto_model.get_output_embeddings(), module.embed_token_id)
        super().__init__(
            model=module.auto_model,
            reward_funcs=[self.ranking_reward, self.format_reward, self.length_reward],
            args=args,
            train_dataset=train_dataset,
            processing_class=module.tokenizer,
            peft_config=peft_config,
            callbacks=callbacks,
        )

    # ---------------------------------------------------------------------------------- embeddings

    def _generate(self, prompts: list):
        output = super()._generate(prompts)
        prompt_ids, completion_ids, extra_fields = output[0], output[1], output[5]
        direct = self.direct_embeddings([prompt[-1]["content"] for prompt in prompts])
        embeddings = self.embed_completions(prompt_ids, completion_ids, direct)
        extra_fields["embedding"] = list(embeddings)
        extra_fields["direct_embedding"] = list(direct)
        return output

    @torch.no_grad()
    def direct_embeddings(self, queries: list[str]) -> np.ndarray:
        """Unit vectors of the queries without reasoning, from the current policy (each distinct query once)."""
        distinct = list(dict.fromkeys(queries))
        with self._policy_mode_kept():
            vectors = self.search_r3.encode_query(distinct, reasoning=False, normalize_embeddings=True)
        row = {query: i for i, query in enumerate(distinct)}
        return vectors[[row[query] for query in queries]]

    @contextmanager
    def _policy_mode_kept(self):
        """Restores the policy's train/eval mode after encoding with it (``encode()`` switches it to eval)."""
        was_training = self.search_r3.training
        try:
            yield
        finally:
            self.search_r3.train(was_training)

    @torch.no_grad()
    def embed_completions(
        self, prompt_ids: list[list[int]], completion_ids: list[list[int]], direct: np.ndarray | None = None
    ) -> np.ndarray:
        """Unit vectors at ``<|embed_token|>`` after each completion's reasoning, from the current policy, as
        inference embeds them: given ``direct`` (:meth:`direct_embeddings`), a completion that is the embed token
        alone takes its query's direct vector, and with ``fuse_direct_embedding`` the others are fused with it."""
        stops = set(self.search_r3[0].stop_token_ids())
        sequences = []
        for prompt, completion in zip(prompt_ids, completion_ids, strict=True):
            reasoning = completion[:-1] if completion and completion[-1] in stops else completion
            sequences.append(list(prompt) + list(reasoning[: self.max_reasoning_tokens]) + [self.embed_token_id])
        model = self.accelerator.unwrap_model(self.model)
        input_ids, attention_mask = left_pad(sequences, self.processing_class.pad_token_id, model.device)
        vectors = F.normalize(last_token_embedding(model, input_ids, attention_mask).float(), dim=-1).cpu()
        if direct is None:
            return vectors.numpy()
        direct = torch.from_numpy(direct)
        if self.search_r3[0].fuse_direct_embedding:
            vectors = F.normalize(fuse(vectors, direct), dim=-1)
        at_once = torch.tensor([list(c) == [self.embed_token_id] for c in completion_ids])
        vectors[at_once] = direct[at_once]
        return vectors.numpy()

    # ------------------------------------------------------------------------------------- rewards

    def ranking_reward(
        self, completions, embedding, relevant_ids, trainer_state, log_metric, direct_embedding=None, **kwargs
    ) -> list[float]:
        """nDCG@k of each completion's relevant documents among the cached corpus (refreshed first); logs the
        mean gain over the direct vectors when they are given."""
        touched = sorted({doc for ids in relevant_ids for doc in ids})
        with self._policy_mode_kept():  # refreshing encodes documents with the policy itself
            refreshed = self.corpus.refresh(trainer_state.global_step, touched)
        for name, value in refreshed.items():
            log_metric(f"corpus/{name}", value)
        rewards = self._ndcg(np.stack(embedding), relevant_ids)
        if direct_embedding is not None:
            direct = self._ndcg(np.stack(direct_embedding), relevant_ids)
            log_metric("gain_over_direct", float(np.mean(rewards) - np.mean(direct)))
        return rewards

    def _ndcg(self, vectors: np.ndarray, relevant_ids) -> list[float]:
        _, ranked = self.corpus.search(vectors, self.ranking_k)
        return [dcg_reward(row.tolist(), ids, self.ranking_k) for row, ids in zip(ranked, relevant_ids, strict=True)]

    def format_reward(self, completions, completion_ids, **kwargs) -> list[float]:
        """1 for a completion that ends with the embed token within the reasoning budget, else 0."""
        return [format_reward(ids, self.embed_token_id, self.max_reasoning_tokens) for ids in completion_ids]

    def length_reward(self, completions, completion_ids, **kwargs) -> list[float]:
        """Minus the share of the reasoning budget each completion used (0 for one that stops at once)."""
        stops = self.search_r3[0].stop_token_ids()
        return [length_cost(ids, stops, self.max_reasoning_tokens) for ids in completion_ids]

    # ---------------------------------------------------------------------------------- checkpoints

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.args.should_save and self.corpus.vectors is not None:
            folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            self.corpus.save(folder / CORPUS_INDEX_DIR)
