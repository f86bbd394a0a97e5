"""When to think: the stop head's training data and its fit (:class:`~st_search_r3.stop_head.StopHead`).

Per training query the model reasons greedily (forced to write), and the reasoning is cut after its first
``sentences`` sentences. One forward pass over ``prompt + cut + <|embed_token|>`` gives the vector after the
reasoning and the last hidden state at every step of it, from which the LM head's best logit among all other
tokens follows: greedy decoding writes ``<|embed_token|>`` exactly where the head's logit beats it. The
query's gain is what the reasoning is worth for retrieval, DCG@100 of its relevant document with the reasoned
vector minus with the direct one, less ``token_cost`` per reasoning token (AdaptThink's reward
relative to not thinking, with Search-R3's ranking reward).

The head is then fitted, everything else frozen, to two logistic losses on that margin (the head's logit
minus the best other one), which is the choice greedy decoding makes:

- the decision, at the first step: stop at once where the gain is not positive, write where it is, each query
  weighted by ``|gain|`` (a wrong choice costs what it loses); weighted apart from the rest
  (``decision_weight``), as Thinkless weights its control token;
- the ending, on every cut reasoning: go on before the cut, stop at it, so that reasoning ends by itself.

Frozen weights keep the direct vectors bit for bit what reasoning off gives, so a query that stops at once
loses nothing.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from st_search_r3.atomic import staged_file, staged_folder, write_file
from st_search_r3.data.retrieval_split import RetrievalSplit
from st_search_r3.embedding import final_hidden_states, left_pad
from st_search_r3.module import SearchR3
from st_search_r3.stop_head import StopHead
from st_search_r3.training.config import SearchR3StopConfig
from st_search_r3.training.reward import dcg_reward

logger = logging.getLogger(__name__)

SENTENCE_END = re.compile(r"(?<![0-9])\.\s+")  # not after a list number: "1. Core concepts" is one sentence


@dataclass
class StopExamples:
    """Per query: the hidden states of its reasoning's steps and what the LM head says there.

    Attributes:
        hidden: ``(steps, hidden_size)`` last hidden states, step 0 at the prompt's end, step ``j`` after ``j``
            reasoning tokens.
        other_max: ``(steps,)`` the LM head's largest logit among all tokens but ``<|embed_token|>``.
        ended: Whether the cut reasoning ended within the budget (then its last step's target is the stop).
        gain: DCG@100 with the reasoning minus without, less the token cost.
    """

    hidden: torch.Tensor
    other_max: torch.Tensor
    ended: bool
    gain: float


def cut_after_sentences(token_ids: list[int], tokenizer, sentences: int) -> tuple[list[int], bool]:
    """The shortest prefix of ``token_ids`` whose text holds ``sentences`` complete sentences (a period and a
    space, or a period at the end), and whether there was one; else all the ids."""
    for length in range(1, len(token_ids) + 1):
        text = tokenizer.decode(token_ids[:length], skip_special_tokens=True)
        if len(SENTENCE_END.findall(text + " ")) >= sentences:  # a period that ends the text ends a sentence
            return list(token_ids[:length]), True
    return list(token_ids), False


@torch.inference_mode()
def stop_examples(
    module: SearchR3,
    queries: list[str],
    documents: np.ndarray,
    relevant: list[list[int]],
    sentences: int = 1,
    token_cost: float = 0.002,
    batch_size: int = 16,
) -> list[StopExamples]:
    """The training examples of the stop head for ``queries`` whose relevant documents are rows ``relevant`` of
    ``documents`` (unit vectors from ``module``'s document path).

    Args:
        module: The model; its current head (if any) writes the reasoning, forced to write at least a token.
        sentences: Reasonings are cut after this many sentences.
        token_cost: DCG subtracted per reasoning token: a reasoning must gain more than it costs.
    """
    model, tokenizer = module.auto_model, module.tokenizer
    lm_head = model.get_output_embeddings()
    traces = module.reasoning_traces(queries, batch_size, reasoning=True)
    direct = _encode(module, queries, batch_size)
    examples = []
    for start in tqdm(range(0, len(queries), batch_size), desc="reasoning steps", leave=False):
        rows = range(start, min(start + batch_size, len(queries)))
        cuts = [cut_after_sentences(list(traces[i].token_ids), tokenizer, sentences) for i in rows]
        prompts = [module.query_prompt_ids(queries[i]) for i in rows]
        ids, mask = left_pad(
            [p + c + [module.embed_token_id] for p, (c, _) in zip(prompts, cuts)], tokenizer.pad_token_id, model.device
        )
        hidden = final_hidden_states(model, ids, mask).float()
        vectors = F.normalize(hidden[:, -1], dim=-1)
        if module.fuse_direct_embedding:
            vectors = F.normalize(vectors + torch.as_tensor(direct[start : start + len(rows)]), dim=-1)
        for k, i in enumerate(rows):
            (cut, ended), steps = cuts[k], len(cuts[k][0]) + 1
            states = hidden[k, -1 - steps : -1]  # the prompt's last position, then one per reasoning token
            logits = lm_head(states.to(model.dtype)).float()
            logits[:, module.embed_token_id] = -float("inf")
            gain = _dcg(vectors[k].numpy(), documents, relevant[i]) - _dcg(direct[i], documents, relevant[i])
            examples.append(StopExamples(states.clone(), logits.max(-1).values, ended, gain - token_cost * len(cut)))
    return examples


def _encode(module: SearchR3, queries: list[str], batch_size: int) -> np.ndarray:
    vectors = []
    for start in range(0, len(queries), batch_size):
        features = module.preprocess(queries[start : start + batch_size], task="query", reasoning=False)
        vectors.append(F.normalize(module(features, task="query", reasoning=False)["sentence_embedding"], dim=-1))
    return torch.cat(vectors).numpy()


def _dcg(query: np.ndarray, documents: np.ndarray, relevant: list[int], k: int = 100) -> float:
    ranked = np.argsort(-(documents @ query), kind="stable")[:k]
    return dcg_reward(ranked.tolist(), relevant, k)


def stop_loss(head: StopHead, examples: list[StopExamples], decision_weight: float = 1.0) -> torch.Tensor:
    """The decision and ending losses of the module docstring, for ``head``."""
    margin = head(torch.stack([e.hidden[0] for e in examples])) - torch.stack([e.other_max[0] for e in examples])
    stop = torch.tensor([e.gain <= 0 for e in examples])
    weight = torch.tensor([abs(e.gain) for e in examples])
    decision = (weight * F.softplus(torch.where(stop, -margin, margin))).sum() / weight.sum().clamp(min=1e-8)

    ended = [e for e in examples if e.ended]
    if not ended:
        return decision_weight * decision
    margin = head(torch.cat([e.hidden[1:] for e in ended])) - torch.cat([e.other_max[1:] for e in ended])
    at_cut = torch.cat([torch.arange(1, len(e.hidden)) == len(e.hidden) - 1 for e in ended])
    ending = F.softplus(torch.where(at_cut, -margin, margin)).mean()
    return decision_weight * decision + ending


def fit_stop_head(
    head: StopHead, examples: list[StopExamples], decision_weight: float = 1.0, l2: float = 1e-3, steps: int = 200
) -> StopHead:
    """``head`` fitted to ``examples`` (L-BFGS, ``l2`` times the squared distance from its starting row)."""
    fitted = StopHead(head.weight, head.bias.item())
    start = head.weight.detach().clone()
    optimizer = torch.optim.LBFGS(fitted.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = stop_loss(fitted, examples, decision_weight) + l2 * (fitted.weight - start).square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return fitted


@torch.no_grad()
def decisions(head: StopHead, examples: list[StopExamples]) -> dict[str, float]:
    """What ``head`` decides on ``examples``: the share that reason, the gain taken (mean gain of the queries
    it reasons on, over all queries) against the most possible, and the share of cut reasonings it ends
    exactly at the cut."""
    stop = head(torch.stack([e.hidden[0] for e in examples]))
    reason = (torch.stack([e.other_max[0] for e in examples]) > stop).numpy()
    gains = np.array([e.gain for e in examples])
    ended = [e for e in examples if e.ended]
    # Greedy ends exactly at the cut: the stop wins there and nowhere before it.
    first_stop = [(head(e.hidden[1:]) > e.other_max[1:]).nonzero().flatten()[:1].tolist() for e in ended]
    at_cut = [stops == [len(e.hidden) - 2] for stops, e in zip(first_stop, ended)]
    return {
        "reasoning_share": float(reason.mean()),
        "gain_taken": float((gains * reason).mean()),
        "gain_possible": float(np.clip(gains, 0, None).mean()),
        "stops_at_cut": float(np.mean(at_cut)) if at_cut else 0.0,
    }


def source_examples(model, config: SearchR3StopConfig, source: str) -> list[StopExamples]:
    """The examples of ``source``'s training queries, collected once into ``output_dir/examples/<source>.pt``
    (a later run, or one resumed after a crash, reads them back)."""
    cache = Path(config.output_dir) / "examples" / f"{source}.pt"
    if cache.is_file():
        return [StopExamples(**e) for e in torch.load(cache)]
    split = RetrievalSplit.load(config.root() / source / "train")
    split = split.sample(config.queries_per_source, config.documents_per_source, seed=config.seed)
    query_ids = [q for q in split.queries if split.qrels.get(q)]
    position = {d: i for i, d in enumerate(split.corpus)}
    documents = model.encode_document(list(split.corpus.values()), batch_size=16, normalize_embeddings=True)
    relevant = [[position[d] for d in split.qrels[q] if d in position] for q in query_ids]
    logger.info("%s: %d training queries, %d documents", source, len(query_ids), len(documents))
    examples = stop_examples(
        model[0], [split.queries[q] for q in query_ids], documents, relevant, config.sentences, config.token_cost
    )
    with staged_file(cache) as staging:
        torch.save([asdict(e) for e in examples], staging)
    return examples


def train_stop_head(config: SearchR3StopConfig) -> Path:
    """Collects the examples, chooses ``l2`` on held-out training queries, fits the head on all of them and
    writes ``config.output_dir/final``: the adapter folder ``config.model`` with the head, reasoning ``"auto"``
    and ``stop_record.json``."""
    from sentence_transformers import SentenceTransformer

    from st_search_r3.resolving import resolve_model

    started = time.time()
    model = SentenceTransformer(resolve_model(config.model), trust_remote_code=True, device="cpu")
    module = model[0]
    module.max_reasoning_tokens = config.max_reasoning_tokens
    module.stop_head = None  # the reasoning is the LM's own, whatever head the model had
    examples = {source: source_examples(model, config, source) for source in config.sources}
    collected = time.time() - started

    everything = [e for source in config.sources for e in examples[source]]
    order = list(range(len(everything)))
    random.Random(config.seed).shuffle(order)
    held = set(order[: int(len(order) * config.holdout_fraction)])
    fit_part = [e for i, e in enumerate(everything) if i not in held]
    held_part = [e for i, e in enumerate(everything) if i in held]
    start = StopHead.from_lm_head(module.auto_model.get_output_embeddings(), module.embed_token_id)
    choices = {}
    for l2 in config.l2:
        choices[l2] = decisions(fit_stop_head(start, fit_part, config.decision_weight, l2), held_part)
        logger.info("l2 %g, held-out queries: %s", l2, choices[l2])
    best = max(config.l2, key=lambda l2: (round(choices[l2]["gain_taken"], 6), l2))
    head = fit_stop_head(start, everything, config.decision_weight, best)

    record = {
        "config": asdict(config),
        "training_queries": {source: len(found) for source, found in examples.items()},
        "collect_seconds": round(collected, 1),
        "fit_seconds": round(time.time() - started - collected, 1),
        "held_out_choice": {str(l2): found for l2, found in choices.items()},
        "l2": best,
        "training_queries_fitted": {source: decisions(head, found) for source, found in examples.items()},
    }
    final = Path(config.output_dir) / "final"
    with staged_folder(final) as staging:
        for path in Path(config.model).iterdir():
            if path.is_file():
                shutil.copy(path, staging / path.name)
        head.save(staging)
        settings = json.loads((staging / SearchR3.config_file_name).read_text())
        write_file(staging / SearchR3.config_file_name, json.dumps({**settings, "reasoning": "auto"}, indent=4))
        write_file(staging / "stop_record.json", json.dumps(record, indent=2))
    logger.info("Stop head (l2 %g) written to %s: %s", best, final, record["training_queries_fitted"])
    return final
