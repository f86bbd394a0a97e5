"""The Search-R3 stage-1 loss: teach ``<|embed_token|>`` to carry a good embedding."""

from __future__ import annotations

import copy
from contextlib import nullcontext
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from sentence_transformers.util import all_gather
from torch import Tensor, nn

from st_search_r3.embedding import shared_prefix_hidden_states


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
    - Distill: ``KL(teacher || model)`` of each anchor's distribution over the same candidates as InfoNCE,
      the teacher's from its own vectors (``labels``: per row, the teacher's normalised vectors of every
      column, concatenated; :func:`~st_search_r3.training.distillation.add_teacher_embeddings`) at
      ``teacher_temperature``. It passes on how the teacher ranks the negatives, not only which is right.

    The loss returns each weighted term as ``{"loss/<term>": value}``; sentence-transformers' trainer sums
    them into the loss it optimises and logs each (averaged since the last log, gathered over processes). A
    term whose weight is 0 is not computed (no LM head, no base pass). LM, KL and format are means over the
    sequences.

    Args:
        model: The SentenceTransformer whose first module is a :class:`~st_search_r3.SearchR3`.
        temperature: InfoNCE temperature on cosine similarities.
        triplet_margin: Margin of the triplet term, in cosine units.
        infonce_weight, triplet_weight, lm_weight, kl_weight, format_weight, distill_weight: Weights of the six
            terms.
        teacher_temperature: Temperature of the teacher's cosine similarities in the distill term.
        gather_across_devices: On several processes (``torchrun``), score each anchor against every process's
            positives and hard negatives, not only its own batch's, as sentence-transformers'
            ``MultipleNegativesRankingLoss`` does: 8 processes of batch 16 then train as one batch of 128 would.
            The triplet term stays per anchor. Without a process group it changes nothing.
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
        distill_weight: float = 0.0,
        teacher_temperature: float = 0.05,
        gather_across_devices: bool = False,
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
        self.distill_weight = distill_weight
        self.teacher_temperature = teacher_temperature
        self.gather_across_devices = gather_across_devices
        llm = model[0].auto_model
        uses_adapters = hasattr(llm, "disable_adapter")
        # Without adapters the base must be a separate frozen copy (taken now, before any update).
        self.reference = None if uses_adapters or kl_weight == 0 else copy.deepcopy(llm).requires_grad_(False).eval()

    # ------------------------------------------------------------------------------- loss terms

    def scores(self, embeddings: list[Tensor], with_grad: bool = True) -> tuple[Tensor, Tensor]:
        """Cosine of every anchor with every positive and hard negative, ``(batch, candidates)``, and the column
        of each anchor's positive. The candidates are this batch's, or with ``gather_across_devices`` (and a
        process group) every process's, in rank order, the gradient flowing back to each process's own rows."""
        anchors, candidates = embeddings[0], embeddings[1:]
        offset = 0
        if self.gather_across_devices and dist.is_available() and dist.is_initialized():
            candidates = [all_gather(column, with_grad=with_grad) for column in candidates]
            offset = dist.get_rank() * len(anchors)
        return anchors @ torch.cat(candidates).T, offset + torch.arange(len(anchors), device=anchors.device)

    def contrastive(self, embeddings: list[Tensor]) -> dict[str, Tensor]:
        """InfoNCE and triplet terms from the normalised embeddings of each column."""
        anchors, positives, negatives = embeddings[0], embeddings[1], embeddings[2:]
        terms = {}
        if self.infonce_weight:
            scores, positive = self.scores(embeddings)
            terms["infonce"] = F.cross_entropy(scores / self.temperature, positive)
        if self.triplet_weight and negatives:
            positive_scores = (anchors * positives).sum(-1, keepdim=True)
            negative_scores = torch.stack([(anchors * n).sum(-1) for n in negatives], dim=1)
            terms["triplet"] = F.relu(negative_scores - positive_scores + self.triplet_margin).mean()
        return terms

    def distill(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        """``KL(teacher || model)`` of each anchor's distribution over the batch's candidates."""
        if labels is None or labels.ndim != 2 or labels.shape[1] % len(embeddings):
            shape = None if labels is None else tuple(labels.shape)
            raise ValueError(
                f"distill_weight needs the teacher's vectors as labels of shape (batch, {len(embeddings)} * dim), "
                f"got {shape}: add them with training.distillation.add_teacher_embeddings"
            )
        teacher = labels.float().to(embeddings[0].device).chunk(len(embeddings), dim=1)
        teacher_log_probs = F.log_softmax(self.scores(list(teacher), with_grad=False)[0] / self.teacher_temperature, -1)
        log_probs = F.log_softmax(self.scores(embeddings)[0] / self.temperature, dim=-1)
        return F.kl_div(log_probs, teacher_log_probs, log_target=True, reduction="batchmean")

    def search_r3(self):
        """The :class:`~st_search_r3.SearchR3` module (``self.model`` may be wrapped for data parallelism)."""
        return getattr(self.model, "module", self.model)[0]

    def encode(self, features: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], int]:
        """Normalised embeddings of one column, its summed per-sequence LM / KL / format terms (those weighted)
        and how many of its sequences have answers to learn."""
        # Through the model's own forward (DistributedDataParallel's, when the trainer wrapped it), which with
        # gradients also returns the hidden states after the shared prefix.
        output = self.model(dict(features))
        hidden, prefix_length = output["states_after_prefix"], output["prefix_length"]
        embeddings = F.normalize(output["sentence_embedding"].float(), dim=-1)
        input_ids, answer_mask = features["input_ids"], features["answer_mask"]
        llm = self.search_r3().auto_model
        sums, answer_rows = {}, 0
        if self.lm_weight or self.kl_weight or self.format_weight:
            answer_rows = int(answer_mask.any(1).sum())
            targets_mask = answer_mask[:, prefix_length + 1 :].bool()
            rows = targets_mask.nonzero()[:, 0]
            tokens_per_row = targets_mask.sum(1).clamp(min=1).float()
            logits = llm.get_output_embeddings()(hidden[:, :-1][targets_mask]).float()
            # Every sequence counts once, however long its answer: per-token terms are averaged per row.
            weights = 1.0 / tokens_per_row[rows]
            targets = input_ids[:, prefix_length + 1 :][targets_mask]
            token_losses = F.cross_entropy(logits, targets, reduction="none")
            if self.lm_weight:
                sums["lm"] = (token_losses * weights).sum()
            if self.format_weight:
                sums["format"] = token_losses[targets == self.search_r3().embed_token_id].sum()
            if self.kl_weight:
                base_logits = self._base_logits(features, prefix_length, targets_mask)
                base_log_probs = F.log_softmax(base_logits, dim=-1)
                kl = (base_log_probs.exp() * (base_log_probs - F.log_softmax(logits, dim=-1))).sum(-1)
                sums["kl"] = (kl * weights).sum()
        return embeddings, sums, answer_rows

    @torch.no_grad()
    def _base_logits(self, features: dict[str, Tensor], prefix_length: int, targets_mask: Tensor) -> Tensor:
        llm = self.search_r3().auto_model
        base = self.reference if self.reference is not None else llm
        with nullcontext() if self.reference is not None else llm.disable_adapter():
            hidden = shared_prefix_hidden_states(base, features["input_ids"], features["attention_mask"], prefix_length)
            return base.get_output_embeddings()(hidden[:, :-1][targets_mask]).float()

    def weighted(self, terms: dict[str, Tensor]) -> dict[str, Tensor]:
        """``{"loss/<term>": weight * value}`` for the terms whose weight is not 0."""
        weights = {
            "infonce": self.infonce_weight,
            "triplet": self.triplet_weight,
            "lm": self.lm_weight,
            "kl": self.kl_weight,
            "format": self.format_weight,
            "distill": self.distill_weight,
        }
        return {f"loss/{name}": weights[name] * value for name, value in terms.items() if weights[name]}

    # ----------------------------------------------------------------------------------- forward

    def forward(self, sentence_features: list[dict[str, Tensor]], labels: Tensor | None = None) -> dict[str, Tensor]:
        sentence_features = list(sentence_features)
        if len(sentence_features) < 2:
            raise ValueError(f"Expected (anchor, positive, negatives...) columns, got {len(sentence_features)}")
        contrastive = bool(self.infonce_weight or self.triplet_weight)
        encoded = [self.encode(features) for features in sentence_features]
        embeddings = [embeddings for embeddings, _, _ in encoded]
        terms = self.contrastive(embeddings) if contrastive else {}
        if self.distill_weight:
            terms["distill"] = self.distill(embeddings, labels)
        answer_rows = max(sum(rows for _, _, rows in encoded), 1)
        for name in ("lm", "kl", "format"):
            if any(name in sums for _, sums, _ in encoded):
                terms[name] = sum(sums[name] for _, sums, _ in encoded) / answer_rows
        terms = self.weighted(terms)
        if not terms:
            raise ValueError("Every loss weight is 0: nothing to train")
        return terms

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "triplet_margin": self.triplet_margin,
            "infonce_weight": self.infonce_weight,
            "triplet_weight": self.triplet_weight,
            "lm_weight": self.lm_weight,
            "kl_weight": self.kl_weight,
            "format_weight": self.format_weight,
            "distill_weight": self.distill_weight,
            "teacher_temperature": self.teacher_temperature,
            "gather_across_devices": self.gather_across_devices,
        }
