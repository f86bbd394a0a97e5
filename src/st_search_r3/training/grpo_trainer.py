"""Stage 2: GRPO on the LLM inside search-r3, rewarded by how well each reasoning's embedding retrieves."""

from __future__ import annotations

from pathlib import Path

from sentence_transformers import SentenceTransformer
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import GRPOConfig, GRPOTrainer

from st_search_r3.training.corpus_index import CorpusIndex
from st_search_r3.training.ranking_reward import RankingReward
from st_search_r3.training.reward import format_reward, length_cost

CORPUS_INDEX_DIR = "corpus_index"


class SearchR3GRPOTrainer(GRPOTrainer):
    """TRL's ``GRPOTrainer`` for the LLM of a search-r3 ``SentenceTransformer``.

    For each training query GRPO samples ``num_generations`` reasonings that end at ``<|embed_token|>``
    (EOS or the budget also end them; the token is then appended, as at inference). Three reward functions,
    weighted by ``args.reward_weights``: ``ranking_reward`` (:class:`~st_search_r3.training.ranking_reward.
    RankingReward`: it embeds each completion with the policy, as inference does, and scores nDCG@``ranking_k``
    of the query's ``relevant_ids`` in the cached corpus), ``format_reward`` and ``length_reward``. A completion
    that stops at once is a valid rollout: it takes the query's direct vector, as ``reasoning="auto"`` does at
    inference. Where the model has a stop head
    (:class:`~st_search_r3.stop_head.StopHead`) it gives the token's logit while sampling and in the loss; the
    head itself is not trained here (``train/stop.py`` fits it). The corpus cache is refreshed once per step
    before ranking, and saved in every checkpoint (``corpus_index/``, by :class:`CorpusIndexCheckpoints`).
    Everything else (generation, with or without vLLM, loss, LoRA via ``peft_config``, accelerate) is TRL's:
    the trainer overrides no method of TRL or transformers.

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
        self.ranking = RankingReward(model, corpus, ranking_k)
        self.embed_token_id = module.embed_token_id
        self.max_reasoning_tokens = module.max_reasoning_tokens
        # A completion is finished when it emits the embed token, not only at EOS.
        module.auto_model.generation_config.eos_token_id = module.stop_token_ids()
        if module.stop_head is not None:
            module.stop_head.requires_grad_(False)
            module.stop_head.attach(module.auto_model.get_output_embeddings(), module.embed_token_id)
        super().__init__(
            model=module.auto_model,
            reward_funcs=[self.ranking, self.format_reward, self.length_reward],
            args=args,
            train_dataset=train_dataset,
            processing_class=module.tokenizer,
            peft_config=peft_config,
            callbacks=callbacks,
        )
        # The policy (a PEFT model when peft_config is given) in the module: the reward embeds with it, and the
        # saved folder gets the adapter only.
        module.auto_model = self.model
        self.add_callback(CorpusIndexCheckpoints(corpus))

    # ------------------------------------------------------------------------------------- rewards

    def format_reward(self, completions, completion_ids, **kwargs) -> list[float]:
        """1 for a completion that ends with the embed token within the reasoning budget, else 0."""
        return [format_reward(ids, self.embed_token_id, self.max_reasoning_tokens) for ids in completion_ids]

    def length_reward(self, completions, completion_ids, **kwargs) -> list[float]:
        """Minus the share of the reasoning budget each completion used (0 for one that stops at once)."""
        stops = self.search_r3[0].stop_token_ids()
        return [length_cost(ids, stops, self.max_reasoning_tokens) for ids in completion_ids]


class CorpusIndexCheckpoints(TrainerCallback):
    """Saves the cached corpus into every checkpoint the trainer writes (``checkpoint-N/corpus_index``), so that
    a resumed run ranks against the same vectors instead of re-encoding the corpus."""

    def __init__(self, corpus: CorpusIndex) -> None:
        self.corpus = corpus

    def on_save(self, args, state, control, **kwargs):
        if args.should_save and self.corpus.vectors is not None:
            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            self.corpus.save(folder / CORPUS_INDEX_DIR)
        return control
