"""Dev quality against training pairs seen: search-r3 and the fine-tuned MiniLM, continued on the same new pairs.

    python research/data_scaling.py                     # segment 1, every stage; each resumes where it stopped
    python research/data_scaling.py --segment 2         # the next 4,800 pairs, from segment 1's end
    python research/data_scaling.py --stage evaluate    # or one stage: stream, search-r3, minilm, evaluate

Both models start where their recipes end, having seen the same 9,021 recipe triplets: search-r3 from the shipped
weights, all-MiniLM-L6-v2 from ``benchmarks/finetune_minilm.py``'s output. Both then train on the same stream of
triplets never drawn before, in segments (``runs/data_scaling/segment-K/stream.jsonl``; the mix is ``--mix``; a
segment starts from the previous segment's final models and excludes every triplet seen before), at a constant
learning rate after a short warm-up, so that a checkpoint's score reflects the pairs seen, not where a decay
schedule stands: search-r3 with ``train/sft.py`` (the settings of ``train/configs/sft_info.yaml``, learning rate
5e-5), MiniLM with MultipleNegativesRankingLoss (batch 32, 128 tokens, learning rate 1e-5). Every ``--every`` pairs a
checkpoint is kept; ``evaluate`` scores every segment's checkpoints on the dev splits of all tasks with
``benchmarks/quality.py`` (search-r3 at 160 tokens, reasoning off; scores cached) and writes
``research/results/data_scaling.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))  # quality.py, finetune_minilm.py

import quality  # noqa: E402
from evaluation_doc import SHORT, scaling_table  # noqa: E402
from finetune_minilm import BATCH as MINILM_BATCH  # noqa: E402
from finetune_minilm import fine_tune, recipe_triplets  # noqa: E402

ROOT = Path(__file__).parent.parent
RUN = ROOT / "runs" / "data_scaling"
RECIPE_PAIRS = 9021  # the triplets the three parts of the shipped recipe draw (finetune_minilm.recipe_triplets)
DEFAULT_MIX = {  # triplets per training set, repeats included; 4,800 in all
    "wordnet": 800,
    "debian": 1200,
    "pycode": 800,
    "infomanuals": 1040,  # (every man-page triplet was in the recipe)
    "faqs": 537,  # every real FAQ pair three times: questions are the weak spot
    "questions": 423,  # the synthetic questions (python -m st_search_r3.data.questions), twice each
}
SEARCH_R3_BATCH = 16
EVAL_MAX_SEQ_LENGTH = 160
DEV_TASKS = [task.metadata.name for task in quality.DATA_TASKS]


def build_stream(root: Path, mix: dict[str, int], seen: set[tuple[str, str]], seed: int = 0) -> tuple[list, dict]:
    """Triplets of the built training sets ``mix`` names whose (anchor, positive) is not in ``seen``: about
    ``mix[name]`` of each set (its unseen rows repeated or subsampled to that count), shuffled with ``seed``."""
    from st_search_r3.training.recipe import draw_rows
    from st_search_r3.training.train_data import load_pairs

    unseen = {}
    for name in mix:
        rows = load_pairs(str(root / name / "train_triplets"))
        unseen[name] = [row for row in rows if (row["anchor"], row["positive"]) not in seen]
        if not unseen[name]:
            raise ValueError(f"{name}: every training triplet was already seen")
    weights = [mix[name] / len(rows) for name, rows in unseen.items()]
    drawn = draw_rows({name: len(rows) for name, rows in unseen.items()}, weights, sum(mix.values()), seed)
    stream = [{key: unseen[name][row][key] for key in ("anchor", "positive", "negative")} for name, row in drawn]
    counts = {name: sum(1 for source, _ in drawn if source == name) for name in mix}
    return stream, {"unseen": {name: len(rows) for name, rows in unseen.items()}, "drawn": counts}


def segment(number: int) -> Path:
    return RUN / f"segment-{number}"


def write_stream(args) -> None:
    folder = segment(args.segment)
    if (folder / "stream.jsonl").is_file():
        return
    from datasets import load_dataset

    from st_search_r3.atomic import write_file
    from st_search_r3.data.sources import data_dir

    seen = {(row["anchor"], row["positive"]) for row in recipe_triplets()}
    for earlier in range(1, args.segment):
        rows = load_dataset("json", data_files=str(segment(earlier) / "stream.jsonl"), split="train")
        seen |= set(zip(rows["anchor"], rows["positive"]))
    stream, counts = build_stream(data_dir(), args.mix, seen, args.seed + args.segment - 1)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in stream)
    info = {"triplets": len(stream), "seed": args.seed, **counts, "sha256": hashlib.sha256(text.encode()).hexdigest()}
    write_file(folder / "stream.json", json.dumps(info, indent=2))
    write_file(folder / "stream.jsonl", text)
    print(json.dumps(info, indent=2))


def start_model(args, model: str) -> str:
    """The model a segment starts from: the recipe's end for the first, else the previous segment's final."""
    if args.segment == 1:
        return args.search_r3 if model == "search_r3" else args.minilm
    previous = segment(args.segment - 1) / model / "final"
    if not previous.is_dir():
        raise FileNotFoundError(f"{previous} is missing: run segment {args.segment - 1} first")
    return str(previous)


def train_search_r3(args) -> None:
    folder = segment(args.segment)
    if (folder / "search_r3" / "final").is_dir():
        return
    steps = args.every // SEARCH_R3_BATCH
    command = [
        sys.executable, str(ROOT / "train" / "sft.py"), "--config", str(ROOT / "train" / "configs" / "sft_info.yaml"),
        "--init_adapter", start_model(args, "search_r3"), "--train_data", str(folder / "stream.jsonl"),
        "--data_sha256", "null", "--source_weights", "1.0", "--max_train_pairs", str(args.pairs),
        "--output_dir", str(folder / "search_r3"),
        "--learning_rate", "5e-5", "--lr_scheduler_type", "constant_with_warmup", "--eval_strategy", "no",
        "--save_steps", str(steps), "--save_total_limit", "1000", "--checkpoint_minutes", "10", "--resume", "true",
    ]  # fmt: skip
    subprocess.run(command, check=True)


def train_minilm(args) -> None:
    output = segment(args.segment) / "minilm"
    if (output / "final").is_dir():
        return
    from datasets import load_dataset
    from sentence_transformers import SentenceTransformer

    stream = segment(args.segment) / "stream.jsonl"
    stream = load_dataset("json", data_files=str(stream), split="train").select(range(args.pairs))
    model = SentenceTransformer(start_model(args, "minilm"), device="cpu")
    run = fine_tune(
        model, stream, output, learning_rate=1e-5, lr_scheduler_type="constant_with_warmup", warmup_steps=0.05,
        save_steps=args.every // MINILM_BATCH,
    )  # fmt: skip
    run.pop("log_history")
    (output / "record.json").write_text(json.dumps(run, indent=2))


def checkpoints(folder: Path, batch: int) -> dict[int, Path]:
    """New pairs seen -> checkpoint folder (only those at multiples of the batch's step counts)."""
    found = {int(path.name.split("-")[1]) * batch: path for path in folder.glob("checkpoint-*")}
    return dict(sorted(found.items()))


def evaluate(args) -> None:
    points = [("search-r3", 0, "search-r3, reasoning off")]  # (model, new pairs seen, quality.py's model name)
    quality.add_finetuned_minilm(args.minilm)
    points.append(("all-MiniLM-L6-v2 fine-tuned", 0, "all-MiniLM-L6-v2 fine-tuned"))
    streams, before = [], 0
    for number in range(1, 100):
        folder = segment(number)
        if not (folder / "stream.json").is_file():
            break
        streams.append(json.loads((folder / "stream.json").read_text()))
        for pairs, path in checkpoints(folder / "search_r3", SEARCH_R3_BATCH).items():
            if pairs % args.every == 0:
                quality.add_folder_models(str(path), f"+{before + pairs}")
                points.append(("search-r3", before + pairs, f"search-r3 +{before + pairs}, reasoning off"))
        for pairs, path in checkpoints(folder / "minilm", MINILM_BATCH).items():
            if pairs % args.every == 0:
                name = f"all-MiniLM-L6-v2 fine-tuned +{before + pairs}"
                quality.add_finetuned_minilm(str(path), name)
                points.append(("all-MiniLM-L6-v2 fine-tuned", before + pairs, name))
        before += streams[-1]["triplets"]
    tasks = {task.metadata.name: task for task in quality.DATA_TASKS if task.metadata.name in args.tasks}
    rows = []
    for model, pairs, name in sorted(points, key=lambda point: (point[0] != "search-r3", point[1])):
        # Checkpoints save the training length (192); the shipped weights already say 160 (and are cached so).
        length = EVAL_MAX_SEQ_LENGTH if model == "search-r3" and pairs else None
        scores = {
            task: quality.evaluate(name, task_class, "dev", "default", length, 16)["ndcg_at_10"]
            for task, task_class in tasks.items()
        }
        rows.append({"model": model, "pairs_seen": RECIPE_PAIRS + pairs, "ndcg_at_10": scores})
        print(f"{model:30s} {RECIPE_PAIRS + pairs:6d} pairs  mean nDCG@10 {100 * mean(scores.values()):.1f}")
    write_report(rows, list(tasks), streams)


def write_report(rows: list[dict], tasks: list[str], streams: list[dict]) -> None:
    results = ROOT / "research" / "results" / "data_scaling"
    short = [SHORT.get(task, task) for task in tasks]
    drawn = "; ".join(f"segment {k}: {stream['drawn']}" for k, stream in enumerate(streams, 1))
    lines = [
        f"Dev nDCG@10 against training pairs seen (`python research/data_scaling.py`): {RECIPE_PAIRS:,} recipe "
        f"triplets, then new ones ({drawn})",
        "",
        scaling_table({"rows": rows}),
    ]
    results.with_suffix(".md").write_text("\n".join(lines) + "\n")
    results.with_suffix(".json").write_text(json.dumps({"streams": streams, "rows": rows}, indent=2) + "\n")
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(tasks) + 1, figsize=(2.6 * (len(tasks) + 1), 3.2), sharex=True)
    for model in dict.fromkeys(row["model"] for row in rows):
        ours = [row for row in rows if row["model"] == model]
        x = [row["pairs_seen"] for row in ours]
        for axis, task, title in zip(axes, [*tasks, None], [*short, "mean"]):
            y = [100 * (row["ndcg_at_10"][task] if task else mean(row["ndcg_at_10"].values())) for row in ours]
            axis.plot(x, y, marker="o", label=model)
            axis.set_title(title, fontsize=9)
    axes[0].set_ylabel("dev nDCG@10")
    axes[-1].legend(fontsize=7)
    figure.supxlabel("training pairs seen")
    figure.tight_layout()
    figure.savefig(results.with_suffix(".png"), dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=["stream", "search-r3", "minilm", "evaluate"], help="default: all")
    parser.add_argument("--segment", type=int, default=1, help="segment K continues from segment K-1's end")
    parser.add_argument("--search-r3", default=str(ROOT / "src" / "st_search_r3" / "weights"), help="start adapter")
    parser.add_argument("--minilm", default=str(ROOT / "runs" / "minilm_finetuned" / "final"), help="start model")
    parser.add_argument("--mix", type=json.loads, default=DEFAULT_MIX, help="JSON: training set -> triplets")
    parser.add_argument("--pairs", type=int, default=4800, help="new pairs each model trains on in a segment")
    parser.add_argument("--every", type=int, default=1600, help="new pairs between scored checkpoints")
    parser.add_argument("--tasks", nargs="+", default=[t for t in DEV_TASKS if t not in quality.held_out_tasks()])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    stages = {"stream": write_stream, "search-r3": train_search_r3, "minilm": train_minilm, "evaluate": evaluate}
    for name, stage in stages.items():
        if args.stage in (None, name):
            stage(args)


if __name__ == "__main__":
    main()
