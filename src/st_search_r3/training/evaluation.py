"""Dev retrieval scores while training, with the query reasoning switched on or off for the evaluation only."""

from __future__ import annotations

from pathlib import Path

from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

from st_search_r3.data.beir import load_beir
from st_search_r3.data.retrieval_split import RetrievalSplit


class DevRetrievalEvaluator(InformationRetrievalEvaluator):
    """nDCG@10 on a dev split, with the query reasoning switched on or off for the evaluation only."""

    def __init__(self, split: RetrievalSplit, name: str, reasoning: bool) -> None:
        relevant = {q: set(docs) for q, docs in split.qrels.items()}
        super().__init__(
            split.queries,
            split.corpus,
            relevant,
            name=name,
            ndcg_at_k=[10],
            accuracy_at_k=[1, 10],
            precision_recall_at_k=[10],
            map_at_k=[10],
            mrr_at_k=[10],
            batch_size=16,
        )
        self.reasoning = reasoning

    def __call__(self, model, *args, **kwargs):
        previous = model[0].reasoning
        model[0].reasoning = self.reasoning
        try:
            return super().__call__(model, *args, **kwargs)
        finally:
            model[0].reasoning = previous


def dev_evaluator(
    config, num_queries: int, num_documents: int | None = None, reasoning: bool = False
) -> DevRetrievalEvaluator | None:
    """The evaluator of ``num_queries`` dev queries among ``num_documents`` documents (all by default), drawn
    with seed 0 so that every evaluation sees the same sample: from ``config.eval_data`` (a BEIR folder's
    ``qrels/dev.tsv``) if set, else from the built ``config.eval_task``'s dev split; None when neither is set."""
    if not config.eval_data and not config.eval_task:
        return None
    if config.eval_data:
        split, name = load_beir(config.eval_data, "dev"), Path(config.eval_data).name
    else:
        split, name = RetrievalSplit.load(config.root() / config.eval_task / "dev"), config.eval_task
    split = split.sample(num_queries, num_documents or len(split.corpus), seed=0)
    return DevRetrievalEvaluator(split, name=f"{name}-dev", reasoning=reasoning)
