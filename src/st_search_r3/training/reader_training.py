"""Training the reader (:mod:`st_search_r3.reader`): the query's read vector learns to find its document.

Per training query, the frozen model's first search over that source's training corpus (a sample sized like a
dev split) gives the top ``read_top_k`` passages, so that some lists hold the relevant document and some do not,
exactly as at test time. The model reads the query and those passages with the reader's LoRA on, and InfoNCE
(cosine / temperature) pulls the read vector to the relevant document against every other document of the
sampled corpora: their vectors are the frozen model's, computed once, so the whole corpus is the set of negatives
at the cost of one matrix product, and the first search's near misses are among them. Documents never pass
through the reader, so their vectors, and the direct query vectors, stay those of the model it was trained on.

Checkpoints (the reader's weights, the optimizer, the step) are written every ``checkpoint_minutes`` to
``output_dir/checkpoint``; ``--resume true`` continues from there.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from st_search_r3.atomic import staged_file, staged_folder, write_file
from st_search_r3.data.retrieval_split import RetrievalSplit
from st_search_r3.embedding import fuse
from st_search_r3.module import SearchR3
from st_search_r3.reader import Reader
from st_search_r3.training.config import SearchR3ReaderConfig, cpu_bf16

logger = logging.getLogger(__name__)


def training_sample(config: SearchR3ReaderConfig, source: str) -> RetrievalSplit:
    """The part of ``source``'s training split the reader trains on: ``queries_per_source`` queries and a corpus of
    ``documents_per_source`` documents (its relevant ones included), drawn with ``seed``."""
    split = RetrievalSplit.load(config.root() / source / "train")
    return split.sample(config.queries_per_source, config.documents_per_source, seed=config.seed)


def first_pass_examples(model, config: SearchR3ReaderConfig) -> dict:
    """The training examples, computed once into ``output_dir/first_pass.pt``: per query its text, its passages
    (the first search's top ``read_top_k``) and its relevant rows of ``documents`` (all sources' sampled corpora,
    normalised, as the frozen model embeds them), ``direct``, the queries' direct vectors in that order, and, where
    ``lexical_weight`` > 0, ``lexical``: what BM25 adds to each query-document cosine (``hybrid_scores`` over the
    query's own source's corpus; 0 for the other sources' documents), which also orders the first search."""
    cache = Path(config.output_dir) / "first_pass.pt"
    if cache.is_file():
        return torch.load(cache)
    examples, documents, directs, lexical = [], [], [], []
    offset = 0
    for source in config.sources:
        split = training_sample(config, source)
        texts = list(split.corpus.values())
        position = {d: offset + i for i, d in enumerate(split.corpus)}
        vectors = model.encode_document(texts, batch_size=32, convert_to_tensor=True, normalize_embeddings=True)
        query_ids = [q for q in split.queries if split.qrels.get(q)]
        queries = [split.queries[q] for q in query_ids]
        direct = model.encode_query(queries, batch_size=32, convert_to_tensor=True, normalize_embeddings=True)
        scores = direct @ vectors.T
        if config.lexical_weight > 0:
            from st_search_r3.lexical import LexicalIndex, hybrid_scores

            bonus = hybrid_scores(torch.zeros_like(scores), LexicalIndex(texts).scores(queries), config.lexical_weight)
            lexical.append(bonus)
            scores = scores + bonus
        top = scores.topk(min(config.read_top_k, len(texts)), dim=1).indices.tolist()
        found = 0
        for query_id, query, row in zip(query_ids, queries, top):
            relevant = [position[d] for d, score in split.qrels[query_id].items() if score > 0 and d in position]
            found += any(offset + i in relevant for i in row)
            examples.append({"query": query, "passages": [texts[i] for i in row], "relevant": relevant})
        logger.info(
            "%s: %d queries, %d documents; the relevant one is read by %.1f%%",
            source,
            len(queries),
            len(texts),
            100 * found / max(len(queries), 1),
        )
        documents.append(vectors)
        directs.append(direct)
        offset += len(texts)
    result = {"examples": examples, "documents": torch.cat(documents), "direct": torch.cat(directs)}
    if lexical:  # each source's queries against its own corpus: the blocks of the diagonal
        result["lexical"] = torch.block_diag(*lexical)
    with staged_file(cache) as staging:
        torch.save(result, staging)
    return result


def reader_loss(
    read: torch.Tensor,
    documents: torch.Tensor,
    relevant: list[list[int]],
    temperature: float,
    lexical: torch.Tensor | None = None,
):
    """InfoNCE of each read vector against every document: the first relevant one is the target, the other
    relevant ones are left out of the negatives. ``lexical``, added to the cosines, is what BM25 adds to them in
    the search the read vector will make."""
    scores = F.normalize(read.float(), dim=-1) @ documents.T
    logits = (scores if lexical is None else scores + lexical) / temperature
    targets = torch.tensor([rows[0] for rows in relevant], device=logits.device)
    others = torch.zeros_like(logits, dtype=torch.bool)
    for i, rows in enumerate(relevant):
        others[i, rows[1:]] = True
    return F.cross_entropy(logits.masked_fill(others, float("-inf")), targets)


def reading_order(passages: list[str], config: SearchR3ReaderConfig, step: int) -> list[str]:
    """The passages as the reader sees them at ``step``: in rank order, or shuffled (``shuffle_passages``)."""
    if not config.shuffle_passages:
        return passages
    return random.Random(f"{config.seed}:{step}:{passages[0][:64]}").sample(passages, len(passages))


def learning_rate(step: int, total: int, config: SearchR3ReaderConfig) -> float:
    """Linear warm-up, then cosine decay to zero."""
    warmup = max(1, int(config.warmup_ratio * total))
    if step < warmup:
        return config.learning_rate * (step + 1) / warmup
    return config.learning_rate * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def save_checkpoint(folder: Path, reader: Reader, optimizer, state: dict) -> None:
    with staged_folder(folder) as staging:
        reader.save(staging)
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        write_file(staging / "state.json", json.dumps(state))


def train_reader(config: SearchR3ReaderConfig) -> Path:
    """Trains the reader on ``config.model`` and writes ``output_dir/final``: the model folder's files with the
    reader (``reader/``), the read settings and ``reader_record.json``."""
    from sentence_transformers import SentenceTransformer

    from st_search_r3.resolving import resolve_model

    torch.manual_seed(config.seed)
    started = time.time()
    # An adapter folder (the shipped weights) is read through its installed, merged snapshot, as users load it.
    model = SentenceTransformer(resolve_model(config.model), trust_remote_code=True, device="cpu")
    module: SearchR3 = model[0]
    module.reasoning = False
    module.read_top_k, module.read_passage_tokens = config.read_top_k, config.read_passage_tokens
    module.read_fuse_direct = config.read_fuse_direct
    if module.reader is not None:
        raise ValueError(f"{config.model} has a reader already; train on the model without it")
    data = first_pass_examples(model, config)
    examples, documents, direct, lexical = data["examples"], data["documents"], data["direct"], data.get("lexical")

    for param in module.parameters():
        param.requires_grad_(False)
    module.reader = Reader.new(module.auto_model, config.lora_r, config.lora_alpha)
    optimizer = torch.optim.AdamW(module.reader.parameters(), lr=config.learning_rate, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(examples) / config.batch_size)
    total = math.ceil(config.epochs * steps_per_epoch)
    checkpoint = Path(config.output_dir) / "checkpoint"
    step, history = 0, []
    if config.resume and (checkpoint / "state.json").is_file():
        state = json.loads((checkpoint / "state.json").read_text())
        resumed = Reader.load(module.auto_model, checkpoint)  # the same layers: its weights replace the fresh ones
        module.reader.model.load_state_dict(resumed.model.state_dict())
        optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt"))
        step, history = state["step"], state["history"]
        logger.info("resumed at step %d of %d", step, total)

    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_bf16(config.bf16))
    last_save = time.time()
    progress = tqdm(total=total, initial=step, desc="reader", unit="step")
    while step < total:
        epoch, index = divmod(step, steps_per_epoch)
        order = list(range(len(examples)))
        random.Random(config.seed + epoch).shuffle(order)
        rows = order[index * config.batch_size : (index + 1) * config.batch_size]
        batch = [examples[i] for i in rows]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, total, config)
        # The direct vectors are those of the first search: fused here, not embedded again at every step.
        pairs = [(e["query"], reading_order(e["passages"], config, step)) for e in batch]
        features = module.preprocess(pairs, task="query", read_fuse_direct=False)
        with autocast:
            read = module(features)["sentence_embedding"]
        if config.read_fuse_direct:
            read = fuse(read, direct[rows])
        bonus = None if lexical is None else lexical[rows]
        loss = reader_loss(read, documents, [e["relevant"] for e in batch], config.temperature, bonus)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        history.append(round(loss.item(), 4))
        progress.update(1)
        progress.set_postfix(loss=f"{sum(history[-20:]) / len(history[-20:]):.3f}")
        if time.time() - last_save > 60 * config.checkpoint_minutes or step == total:
            save_checkpoint(checkpoint, module.reader, optimizer, {"step": step, "history": history})
            last_save = time.time()
    progress.close()

    final = Path(config.output_dir) / "final"
    record = {
        "config": asdict(config),
        "queries": len(examples),
        "documents": len(documents),
        "steps": total,
        "loss_history": history,
        "seconds": round(time.time() - started, 1),
    }
    with staged_folder(final) as staging:
        for path in Path(config.model).iterdir():
            if path.is_file():
                shutil.copy(path, staging / path.name)
        module.reader.save(staging)
        settings = json.loads((staging / SearchR3.config_file_name).read_text())
        settings.update(
            read_top_k=config.read_top_k,
            read_passage_tokens=config.read_passage_tokens,
            read_fuse_direct=config.read_fuse_direct,
        )
        write_file(staging / SearchR3.config_file_name, json.dumps(settings, indent=4))
        write_file(staging / "reader_record.json", json.dumps(record, indent=2))
    logger.info("Reader written to %s (%d steps, %.0f s)", final, total, record["seconds"])
    return final
