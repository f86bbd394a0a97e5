"""Synthetic questions for the documents already built (doc2query, InPars), kept by a round-trip filter.

    python -m st_search_r3.data.questions [--sources debian manpages infomanuals_core pycode] [--per-source 300]
        [--samples 0] [--pool 300]

The base LLM writes a greedy question (and ``--samples`` sampled ones) per training document, few-shot: the prompt
shows real question-answer pairs of the FAQ training split (``Text: <answer> / Question: <question>``), then the
document. A question is kept only when the current search-r3 (reasoning off), given the question, ranks its
document first among ``--pool`` of the source's drawn training documents (Promptagator's round-trip consistency);
its hard negative is the document ranked next. Written questions are kept per batch in
``<data>/questions_written/``, so a stopped build resumes and a larger ``--per-source`` adds to a smaller one.

Written as ``<data>/questions/train_triplets`` (``anchor, positive, negative, query_id, negative_id``, as the built
sources' triplets) with a manifest, so ``train/sft.py --sources ... questions`` mixes it in.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import time
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from tqdm.auto import tqdm

from st_search_r3.atomic import staged_folder
from st_search_r3.base_model import DEFAULT_BASE_MODEL
from st_search_r3.data.retrieval_split import RetrievalSplit

logger = logging.getLogger(__name__)

NAME = "questions"
MIN_QUESTION_WORDS = 4


def few_shot_prefix(faq_train: RetrievalSplit, shots: int = 3, max_chars: int = 300, seed: int = 0) -> str:
    """``Text: <answer>\\nQuestion: <question>\\n\\n`` for ``shots`` question-answer pairs of the FAQ split."""
    query_ids = sorted(q for q in faq_train.queries if faq_train.queries[q].rstrip().endswith("?"))
    chosen = random.Random(seed).sample(query_ids, shots)
    pairs = [(faq_train.corpus[next(iter(faq_train.qrels[q]))], faq_train.queries[q]) for q in chosen]
    return "".join(
        f"Text: {' '.join(answer.split())[:max_chars]}\nQuestion: {question}\n\n" for answer, question in pairs
    )


def first_question(text: str) -> str | None:
    """The generated text's first line when it is a question of at least ``MIN_QUESTION_WORDS`` words."""
    line = text.strip().split("\n")[0].strip()
    return line if line.endswith("?") and len(line.split()) >= MIN_QUESTION_WORDS else None


@torch.inference_mode()
def write_questions(
    tokenizer, model, documents: list[str], prefix: str, samples: int = 0, max_chars: int = 400
) -> list[list[str]]:
    """Per document, its greedy question and up to ``samples`` more sampled at temperature 0.8 (duplicates and
    non-questions dropped; an empty list where the LLM wrote no question), in one left-padded batch."""
    prompts = [f"{prefix}Text: {' '.join(d.split())[:max_chars]}\nQuestion:" for d in documents]
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    settings = dict(max_new_tokens=40, pad_token_id=tokenizer.pad_token_id)
    outputs = [model.generate(**batch, do_sample=False, **settings)]
    if samples:
        sampled = model.generate(
            **batch, do_sample=True, temperature=0.8, top_p=0.95, num_return_sequences=samples, **settings
        )
        outputs += [sampled[k::samples] for k in range(samples)]
    texts = [tokenizer.batch_decode(out[:, batch.input_ids.shape[1] :], skip_special_tokens=True) for out in outputs]
    questions = [[first_question(version[i]) for version in texts] for i in range(len(documents))]
    return [[q for q in dict.fromkeys(asked) if q] for asked in questions]


class WrittenQuestions:
    """The questions written so far for one source, one line per document in ``path`` (JSONL), so that a stopped
    build resumes and a larger ``per_source`` only writes questions for the documents it adds."""

    def __init__(self, path: Path) -> None:
        self.path = path
        lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
        if lines:
            try:
                json.loads(lines[-1])
            except json.JSONDecodeError:  # a line cut short by a crash: its batch is written again
                lines.pop()
        self.questions = {row["id"]: row["questions"] for row in map(json.loads, lines)}

    def add(self, ids: list[str], questions: list[list[str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            for document_id, asked in zip(ids, questions, strict=True):
                handle.write(json.dumps({"id": document_id, "questions": asked}, ensure_ascii=False) + "\n")
                self.questions[document_id] = asked
            handle.flush()


def round_trip(
    query_vectors: np.ndarray, document_vectors: np.ndarray, sources: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per question ``k``, written for document ``sources[k]``: whether that document ranks first among all
    ``document_vectors``, and the best other document (the hard negative). Vectors are unit rows."""
    scores = query_vectors @ document_vectors.T
    rows = np.arange(len(query_vectors))
    kept = scores.argmax(axis=1) == sources
    scores[rows, sources] = -np.inf
    return kept, scores.argmax(axis=1)


def build(
    root: Path,
    sources: list[str],
    per_source: int,
    seed: int = 0,
    embedder: str = "search-r3",
    writer: str = DEFAULT_BASE_MODEL,
    shots: int = 3,
    samples: int = 0,
    pool: int = 300,
    batch_size: int = 16,
    device: str = "cpu",
) -> dict:
    """Writes ``root/questions`` and returns its manifest.

    Args:
        root: The built data: ``root/<source>/train`` for each source, and ``root/faqs/train`` for the shots.
        per_source: Training documents drawn per source (seed ``seed``; a larger count draws the same documents
            first).
        embedder: The encoder of the round-trip filter: a search-r3 model (name or folder; queries embed without
            reasoning) or any SentenceTransformer (``"all-MiniLM-L6-v2"`` comes from its PyPI package).
        writer: The causal LM that writes the questions.
        shots: Question-answer pairs shown in the prompt.
        samples: Questions sampled per document besides the greedy one; each that passes the filter is a triplet.
        pool: The round trip ranks a question's document among this many drawn documents (consecutive pools of
            the draw), so the filter is as strict whatever ``per_source`` is.
        batch_size: Documents per generation batch; written questions are kept in ``root/questions_written/`` after
            each batch, and a build resumes from them.
        device: Where the writer and the filter run ("cuda" for a larger writer).
    """
    from sentence_transformers import SentenceTransformer

    from st_search_r3.loading import load_llm
    from st_search_r3.module import SearchR3
    from st_search_r3.resolving import resolve_model

    started = time.time()
    tokenizer, llm, _ = load_llm(writer)
    llm.to(device)
    prefix = few_shot_prefix(RetrievalSplit.load(root / "faqs" / "train"), shots, seed=seed)
    setting = json.dumps([writer, prefix, samples, seed])
    model = SentenceTransformer(resolve_model(embedder), trust_remote_code=True, device=device)
    direct = {"reasoning": False} if isinstance(model[0], SearchR3) else {}  # any other encoder has no such switch
    rows, counts = [], {}
    for source in sources:
        corpus = RetrievalSplit.load(root / source / "train").corpus
        ids = sorted(corpus)
        random.Random(seed).shuffle(ids)  # a draw whose first documents stay first when per_source grows
        ids = ids[:per_source]
        documents = [corpus[i] for i in ids]
        digest = hashlib.sha256(f"{setting}{source}".encode()).hexdigest()[:12]
        written = WrittenQuestions(root / f"{NAME}_written" / f"{source}-{digest}.jsonl")
        for start in tqdm(range(0, len(ids), batch_size), desc=f"{source}: writing questions"):
            if any(i not in written.questions for i in ids[start : start + batch_size]):
                torch.manual_seed(seed + start)  # the same samples whether or not the build was resumed
                batch = documents[start : start + batch_size]
                written.add(ids[start : start + batch_size], write_questions(tokenizer, llm, batch, prefix, samples))
        asked = [(i, q) for i, d in enumerate(ids) for q in written.questions[d]]
        counts[source] = {"documents": len(ids), "questions": len(asked), "kept": 0}
        if not asked:
            logger.warning("%s: the writer wrote no question for %d documents", source, len(documents))
            continue
        document_vectors = model.encode_document(documents, batch_size=16, normalize_embeddings=True)
        query_vectors = model.encode_query([q for _, q in asked], normalize_embeddings=True, **direct)
        for first in range(0, len(ids), pool):
            ours = [k for k, (i, _) in enumerate(asked) if first <= i < first + pool]
            sources_in_pool = np.array([asked[k][0] - first for k in ours], dtype=int)
            kept, negatives = round_trip(query_vectors[ours], document_vectors[first : first + pool], sources_in_pool)
            for k, keep, j in zip(ours, kept, negatives + first):
                if keep:
                    i, question = asked[k]
                    triplet = dict(anchor=question, positive=documents[i], negative=documents[j])
                    rows.append(triplet | dict(query_id=f"{source}:{ids[i]}", negative_id=f"{source}:{ids[j]}"))
            counts[source]["kept"] += int(kept.sum())
        logger.info("%s: %s", source, counts[source])
    if not rows:
        raise ValueError(f"No question passed the round-trip filter ({counts}): nothing to write")
    manifest = {
        "name": NAME,
        "source": f"questions written by {writer} ({shots}-shot, Perl and Z Shell FAQ pairs; greedy and {samples} "
        f"sampled per document) for training documents of {', '.join(sources)}, kept when {embedder} ranks their "
        f"document first among {pool}",
        "seed": seed,
        "counts": counts,
        "train_triplets": len(rows),
        "seconds": round(time.time() - started),
        "few_shot_prompt": prefix,
    }
    with staged_folder(root / NAME) as staging:
        Dataset.from_list(rows).save_to_disk(str(staging / "train_triplets"))
        manifest["files"] = {  # what training pins (st_search_r3.training.recipe)
            str(path.relative_to(staging)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted((staging / "train_triplets").rglob("*"))
            if path.is_file()
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def main() -> None:
    from st_search_r3.data.sources import data_dir

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="built data (default: $ST_SEARCH_R3_DATA)")
    parser.add_argument("--sources", nargs="+", default=["debian", "manpages", "infomanuals_core", "pycode"])
    parser.add_argument("--per-source", type=int, default=300, help="training documents per source")
    parser.add_argument("--samples", type=int, default=0, help="sampled questions per document besides the greedy one")
    parser.add_argument("--pool", type=int, default=300, help="documents the round trip ranks each question among")
    parser.add_argument("--embedder", default="search-r3", help="the model of the round-trip filter")
    parser.add_argument("--writer", default=DEFAULT_BASE_MODEL, help="the causal LM that writes (a name or folder)")
    parser.add_argument("--batch-size", type=int, default=16, help="documents per generation batch")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    root = args.out or data_dir()
    manifest = build(
        root, args.sources, args.per_source, args.seed, args.embedder, writer=args.writer, samples=args.samples,
        pool=args.pool, batch_size=args.batch_size, device=args.device,
    )  # fmt: skip
    print(json.dumps({k: v for k, v in manifest.items() if k != "few_shot_prompt"}, indent=2))


if __name__ == "__main__":
    main()
