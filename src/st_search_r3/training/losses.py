"""The Search-R3 stage-1 loss: teach ``<|embed_token|>`` to carry a good embedding."""

from __future__ import annotations

import copy
from contextlib import nullcontext
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from sentence_transformers.base.losses.gradcache import RandContext
from torch import Tensor, nn

from st_search_r3.embedding import common_prefix_length, fuse, shared_prefix_hidden_states


class SearchR3Loss(nn.Module):
    """InfoNCE + triplet margin on the embeddings, LM cross-entropy and KL to the base on the answers.

    Inputs are the columns of a ``(anchor, positive, negative_1, ..., negative_n)`` dataset, tokenized by
    :class:`~st_search_r3.SearchR3` (anchors with ``task="query"``, usually as ``(query, reasoning)``
    pairs; the rest with ``task="document"``). With ``a`` the anchors, ``p`` the positives and ``n``
    the hard negatives, all L2-normalised, and ``s(x, y)`` the cosine:

    - InfoNCE: cross-entropy of ``s(a_i, [p; n]) / temperature`` towards ``p_i``; every other positive
      and every hard negative in the batch is a negative.
    - Triplet: ``mean(max(0, s(a_i, n_ij) - s(a_i, p_i) + margin))``.
    - LM: mean token cross-entropy of what the model writes in each sequence (``answer_mask``: the
      reasoning or "The embedding is", and ``<|embed_token|>``), so it keeps emitting the token.
    - KL: ``KL(base || model)`` of the next-token distributions on those same tokens, where the base is
      the model with its LoRA adapters disabled (or a frozen copy taken at construction).
    - Format: the cross-entropy of ``<|embed_token|>`` itself where it follows the answer, so the model
      learns to end its reasoning by writing the token. Inside the LM term it is one token of many, and
      too weak against the contrastive terms for the model ever to emit it.

    The total is the weighted sum. A term whose weight is 0 is not computed (no LM head, no base pass).
    LM, KL and format are means over the sequences that have answers to learn (see
    ``reasoning_answers_only``).

    Args:
        model: The SentenceTransformer whose first module is a :class:`~st_search_r3.SearchR3`.
        temperature: InfoNCE temperature on cosine similarities.
        triplet_margin: Margin of the triplet term, in cosine units.
        infonce_weight, triplet_weight, lm_weight, kl_weight, format_weight: Weights of the five terms.
        reasoning_answers_only: LM, KL and format learn only from reasoning answers: a sequence whose answer is
            the direct one ("The embedding is <|embed_token|>": documents, queries without reasoning) is skipped.
            Otherwise the model, which sees that answer several times per reasoning, learns to answer every
            reasoning prompt with it.
        frozen_output_rows: LM, KL and format do not update the output embeddings. With tied embeddings the
            ``<|embed_token|>`` row is also the input the embedding is read at, so the format term would
            pull every vector towards what makes the token likely; frozen, only the adapters learn to
            write it.
        mini_batch_size: If set, gradient caching (GradCache, as in
            ``CachedMultipleNegativesRankingLoss``): the batch is embedded in mini-batches of this size
            without gradients, the contrastive loss is back-propagated to the embeddings, then each
            mini-batch is re-run with gradients. The contrastive batch can then exceed memory.
    """

    def __init__(
        self,
        model,
        temperature: float = 0.05,
        triplet_margin: float = 0.1,
        infonce_weight: float = 1.0,
        triplet_weight: float = 1.0,
        lm_weight: float = 0.1,
        kl_weight: float = 0.1,
        format_weight: float = 0.0,
        reasoning_answers_only: bool = False,
        frozen_output_rows: bool = False,
        mini_batch_size: int | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.temperature = temperature
        self.triplet_margin = triplet_margin
        self.infonce_weight = infonce_weight
        self.triplet_weight = triplet_weight
        self.lm_weight = lm_weight
        self.kl_weight = kl_weight
        self.format_weight = format_weight
        self.reasoning_answers_only = reasoning_answers_only
        self.frozen_output_rows = frozen_output_rows
        self.mini_batch_size = mini_batch_size
        llm = model[0].auto_model
        uses_adapters = hasattr(llm, "disable_adapter")
        # Without adapters the base must be a separate frozen copy (taken now, before any update).
        self.reference = None if uses_adapters or kl_weight == 0 else copy.deepcopy(llm).requires_grad_(False).eval()

    # ------------------------------------------------------------------------------- loss terms

    def contrastive(self, embeddings: list[Tensor]) -> dict[str, Tensor]:
        """InfoNCE and triplet terms from the normalised embeddings of each column."""
        anchors, positives, negatives = embeddings[0], embeddings[1], embeddings[2:]
        candidates = torch.cat([positives, *negatives])
        terms = {}
        if self.infonce_weight:
            scores = anchors @ candidates.T / self.temperature
            terms["infonce"] = F.cross_entropy(scores, torch.arange(len(anchors), device=scores.device))
        if self.triplet_weight and negatives:
            positive_scores = (anchors * positives).sum(-1, keepdim=True)
            negative_scores = torch.stack([(anchors * n).sum(-1) for n in negatives], dim=1)
            terms["triplet"] = F.relu(negative_scores - positive_scores + self.triplet_margin).mean()
        return terms

    def encode(self, features: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], int]:
        """Normalised embeddings of one column, its summed per-sequence LM / KL / format terms (those weighted)
        and how many of its sequences have answers to learn."""
        llm = self.model[0].auto_model
        input_ids, attention_mask, answer_mask = (features[k] for k in ("input_ids", "attention_mask", "answer_mask"))
        # The template shared by every row runs once; the prefix stops before the shortest prompt ends so
        # that every answer token is still predicted from a computed position.
        shortest_prompt = int((attention_mask.sum(1) - answer_mask.sum(1)).min())
        prefix_length = common_prefix_length(input_ids, attention_mask, limit=shortest_prompt - 1)
        module = self.model[0]
        with module.embedding_depth():
            hidden = shared_prefix_hidden_states(llm, input_ids, attention_mask, prefix_length)
            embeddings = F.normalize(hidden[:, -1].float(), dim=-1)
            if "direct_ids" in features:  # fuse_direct_embedding: the query's reasoning-off view joins in
                ids, mask = features["direct_ids"], features["direct_mask"]
                direct_prefix = common_prefix_length(ids, mask, limit=int(mask.sum(1).min()) - 1)
                direct = shared_prefix_hidden_states(llm, ids, mask, direct_prefix)[:, -1]
                embeddings = F.normalize(fuse(embeddings, direct), dim=-1)
        sums, answer_rows = {}, 0
        if self.lm_weight or self.kl_weight or self.format_weight:
            if module.embedding_layers is not None:  # the LM head reads the last layer, not the embedding's
                hidden = shared_prefix_hidden_states(llm, input_ids, attention_mask, prefix_length)
            if self.reasoning_answers_only:
                answer_mask = answer_mask * ~self._direct_answers(input_ids, answer_mask)[:, None]
            answer_rows = int(answer_mask.any(1).sum())
            targets_mask = answer_mask[:, prefix_length + 1 :].bool()
            rows = targets_mask.nonzero()[:, 0]
            tokens_per_row = targets_mask.sum(1).clamp(min=1).float()
            logits = self._output_logits(hidden[:, :-1][targets_mask]).float()
            # Every sequence counts once, however long its answer: per-token terms are averaged per row.
            weights = 1.0 / tokens_per_row[rows]
            targets = input_ids[:, prefix_length + 1 :][targets_mask]
            token_losses = F.cross_entropy(logits, targets, reduction="none")
            if self.lm_weight:
                sums["lm"] = (token_losses * weights).sum()
            if self.format_weight:
                sums["format"] = token_losses[targets == self.model[0].embed_token_id].sum()
            if self.kl_weight:
                base_logits = self._base_logits(features, prefix_length, targets_mask)
                base_log_probs = F.log_softmax(base_logits, dim=-1)
                kl = (base_log_probs.exp() * (base_log_probs - F.log_softmax(logits, dim=-1))).sum(-1)
                sums["kl"] = (kl * weights).sum()
        return embeddings, sums, answer_rows

    def _direct_answers(self, input_ids: Tensor, answer_mask: Tensor) -> Tensor:
        """Rows whose answer is the direct one (left padding puts every answer at the end)."""
        direct = torch.tensor(self.model[0].direct_answer_ids())
        if input_ids.shape[1] < len(direct):
            return torch.zeros(len(input_ids), dtype=torch.bool)
        return (answer_mask.sum(1) == len(direct)) & (input_ids[:, -len(direct) :] == direct).all(1)

    def _output_logits(self, hidden: Tensor) -> Tensor:
        head = self.model[0].auto_model.get_output_embeddings()
        if not self.frozen_output_rows:
            return head(hidden)
        frozen = {name: value.detach() for name, value in head.named_parameters()}
        return torch.func.functional_call(head, frozen, (hidden,))

    @torch.no_grad()
    def _base_logits(self, features: dict[str, Tensor], prefix_length: int, targets_mask: Tensor) -> Tensor:
        llm = self.model[0].auto_model
        base = self.reference if self.reference is not None else llm
        with nullcontext() if self.reference is not None else llm.disable_adapter():
            hidden = shared_prefix_hidden_states(base, features["input_ids"], features["attention_mask"], prefix_length)
            return base.get_output_embeddings()(hidden[:, :-1][targets_mask]).float()

    def combine(self, terms: dict[str, Tensor]) -> Tensor:
        weights = {
            "infonce": self.infonce_weight,
            "triplet": self.triplet_weight,
            "lm": self.lm_weight,
            "kl": self.kl_weight,
            "format": self.format_weight,
        }
        return sum(weights[name] * value for name, value in terms.items())

    # ----------------------------------------------------------------------------------- forward

    def forward(self, sentence_features: list[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        sentence_features = list(sentence_features)
        if len(sentence_features) < 2:
            raise ValueError(f"Expected (anchor, positive, negatives...) columns, got {len(sentence_features)}")
        if self.mini_batch_size is not None and torch.is_grad_enabled():
            return self._forward_cached(sentence_features)
        contrastive = bool(self.infonce_weight or self.triplet_weight)
        if not contrastive and self.reasoning_answers_only:
            # Training the writer alone: columns with nothing to learn from (documents) are not run.
            sentence_features = [
                f for f in sentence_features if not self._direct_answers(f["input_ids"], f["answer_mask"]).all()
            ]
        encoded = [self.encode(features) for features in sentence_features]
        terms = self.contrastive([embeddings for embeddings, _, _ in encoded]) if contrastive else {}
        answer_rows = max(sum(rows for _, _, rows in encoded), 1)
        for name in ("lm", "kl", "format"):
            if any(name in sums for _, sums, _ in encoded):
                terms[name] = sum(sums[name] for _, sums, _ in encoded) / answer_rows
        self.last_terms = {name: float(value.detach()) for name, value in terms.items()}
        if not terms:  # e.g. a batch of documents only, while training the writer alone: nothing to learn
            return torch.zeros((), requires_grad=True)
        return self.combine(terms)

    def _forward_cached(self, sentence_features: list[dict[str, Tensor]]) -> Tensor:
        """GradCache: embed without gradients, back-propagate to the embeddings, replay in the backward."""
        ranges = [self._ranges(len(features["input_ids"])) for features in sentence_features]
        embeddings, random_states, aux, answer_rows = [], [], {}, 0
        with torch.no_grad():
            for features, column_ranges in zip(sentence_features, ranges):
                column, states = [], []
                for begin, end in column_ranges:
                    mini_batch = {k: v[begin:end] for k, v in features.items() if isinstance(v, Tensor)}
                    states.append(RandContext(*mini_batch.values()))
                    mini_embeddings, sums, rows = self.encode(mini_batch)
                    answer_rows += rows
                    column.append(mini_embeddings)
                    for name, value in sums.items():
                        aux[name] = aux.get(name, 0.0) + float(value)
                embeddings.append(torch.cat(column).requires_grad_())
                random_states.append(states)
        terms = self.contrastive(embeddings)
        if terms:
            self.combine(terms).backward()
        answer_rows = max(answer_rows, 1)
        terms.update({name: torch.tensor(value / answer_rows) for name, value in aux.items()})
        self.last_terms = {name: float(value.detach()) for name, value in terms.items()}
        loss = self.combine(terms).detach().requires_grad_()
        loss.register_hook(
            partial(
                self._replay,
                sentence_features=sentence_features,
                gradients=[
                    column.grad if column.grad is not None else torch.zeros_like(column) for column in embeddings
                ],
                ranges=ranges,
                random_states=random_states,
                answer_rows=answer_rows,
            )
        )
        return loss

    def _replay(self, grad_output, sentence_features, gradients, ranges, random_states, answer_rows) -> None:
        """Re-runs each mini-batch with gradients: cached embedding gradients plus its own LM / KL terms."""
        with torch.enable_grad():
            for features, column_gradient, column_ranges, states in zip(
                sentence_features, gradients, ranges, random_states
            ):
                for (begin, end), state in zip(column_ranges, states):
                    mini_batch = {k: v[begin:end] for k, v in features.items() if isinstance(v, Tensor)}
                    with state:
                        mini_embeddings, sums, _ = self.encode(mini_batch)
                    surrogate = (mini_embeddings * column_gradient[begin:end]).sum()
                    surrogate = surrogate + self.combine(sums) / answer_rows if sums else surrogate
                    (surrogate * grad_output).backward()

    def _ranges(self, batch_size: int) -> list[tuple[int, int]]:
        return [
            (begin, min(begin + self.mini_batch_size, batch_size))
            for begin in range(0, batch_size, self.mini_batch_size)
        ]

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "triplet_margin": self.triplet_margin,
            "infonce_weight": self.infonce_weight,
            "triplet_weight": self.triplet_weight,
            "lm_weight": self.lm_weight,
            "kl_weight": self.kl_weight,
            "format_weight": self.format_weight,
            "reasoning_answers_only": self.reasoning_answers_only,
            "frozen_output_rows": self.frozen_output_rows,
            "mini_batch_size": self.mini_batch_size,
        }
