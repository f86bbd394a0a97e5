"""Writes docs/evaluation.md, the README's headline table and the shipped model card's scores
(src/st_search_r3/weights/scores.md) from the committed results in benchmarks/results/.

    python benchmarks/evaluation_doc.py          # or: make docs
    python benchmarks/evaluation_doc.py --check  # exit 1 if any of them is not what the results give

Nothing here is typed by hand: every figure comes from a results file, named beside its table with the command
that wrote it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from st_search_r3.data.sources import SOURCE_TASKS

ROOT = Path(__file__).parent.parent
RESULTS = ROOT / "benchmarks" / "results"
RESEARCH = ROOT / "research" / "results"
LEXICAL = (
    "dev_lexical",
    "test_lexical",
    "test_lexical_minilm",
    "dev_lexical_minilm_finetuned",
    "test_lexical_minilm_finetuned",
)
README = ROOT / "README.md"
EVALUATION = ROOT / "docs" / "evaluation.md"
MODEL_CARD_SCORES = ROOT / "src" / "st_search_r3" / "weights" / "scores.md"
HEADLINE = ("<!-- headline table: written by benchmarks/evaluation_doc.py -->", "<!-- end of headline table -->")
SHORT = {
    "SearchR3WordNetRetrieval": "WordNet",
    "SearchR3DebianRetrieval": "Debian",
    "SearchR3PythonCodeRetrieval": "Python code",
    "SearchR3ManPagesRetrieval": "man pages",
    "SearchR3InfoManualsRetrieval": "info manuals",
    "SearchR3FAQRetrieval": "FAQs",
    "SearchR3VimFAQRetrieval": "Vim FAQ (held out)",
}
SHIPPED_ROW = "search-r3, reasoning off"


def load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def quality_table(results: dict, recall: bool = True) -> str:
    """nDCG@10 (/ Recall@10) x100 per model and task, and the mean nDCG@10; the shipped model in bold."""
    rows = results["results"]
    tasks = list(dict.fromkeys(row["task"] for row in rows))
    models = list(dict.fromkeys(row["model"] for row in rows))
    score = {(row["model"], row["task"]): row for row in rows}
    lines = [
        "| model | " + " | ".join(SHORT.get(task, task) for task in tasks) + " | mean nDCG@10 |",
        "|---|" + "---:|" * (len(tasks) + 1),
    ]
    for model in models:
        cells = []
        for task in tasks:
            row = score[(model, task)]
            cell = f"{100 * row['ndcg_at_10']:.1f}"
            cells.append(f"{cell} / {100 * row['recall_at_10']:.1f}" if recall else cell)
        mean = 100 * sum(score[(model, task)]["ndcg_at_10"] for task in tasks) / len(tasks)
        name, total = (f"**{model}** (shipped)", f"**{mean:.1f}**") if model == SHIPPED_ROW else (model, f"{mean:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {total} |")
    return "\n".join(lines)


def reasoning_table(report: dict) -> str:
    lines = [
        "| task | queries | off | on | auto | oracle off / on | auto reasons on | self-ended (auto / on) | "
        "looping (auto / on) | q/s off | q/s auto | q/s on |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for task in report["tasks"]:
        auto, on = task["auto_traces"], task["on_traces"]
        lines.append(
            f"| {SHORT.get(task['task'], task['task'])} | {task['queries']} | {100 * task['ndcg_at_10_off']:.1f} | "
            f"{100 * task['ndcg_at_10_on']:.1f} | {100 * task['ndcg_at_10_auto']:.1f} | "
            f"{100 * task['ndcg_at_10_oracle_off_greedy']:.1f} | {100 * task['auto_reasoning_share']:.1f}% | "
            f"{100 * auto['self_ended']:.0f}% / {100 * on['self_ended']:.0f}% | "
            f"{100 * auto['looping']:.1f}% / {100 * on['looping']:.0f}% | {task['queries_per_second_off']:.1f} | "
            f"{task['queries_per_second_auto']:.1f} | {task['queries_per_second_on']:.2f} |"
        )
    keys = ("off", "on", "auto", "oracle_off_greedy")
    mean = {key: sum(t[f"ndcg_at_10_{key}"] for t in report["tasks"]) / len(report["tasks"]) for key in keys}
    lines.append(
        f"\nMean nDCG@10: off {100 * mean['off']:.1f}, on {100 * mean['on']:.1f}, auto {100 * mean['auto']:.1f}, "
        f"oracle off / on {100 * mean['oracle_off_greedy']:.1f}."
    )
    return "\n".join(lines)


def scaling_table(report: dict) -> str:
    """Dev nDCG@10 x100 per model and training pairs seen (research/data_scaling.py)."""
    tasks = list(report["rows"][0]["ndcg_at_10"])
    lines = [
        "| model | pairs seen | " + " | ".join(SHORT.get(task, task) for task in tasks) + " | mean |",
        "|---|---:|" + "---:|" * (len(tasks) + 1),
    ]
    for row in report["rows"]:
        scores = [100 * row["ndcg_at_10"][task] for task in tasks]
        cells = " | ".join(f"{score:.1f}" for score in scores)
        lines.append(f"| {row['model']} | {row['pairs_seen']:,} | {cells} | {sum(scores) / len(scores):.1f} |")
    return "\n".join(lines)


def scaling_gains(report: dict) -> str:
    """Per model: its mean dev nDCG@10 at the first and the last point, and the pairs between them."""
    parts = []
    for model in dict.fromkeys(row["model"] for row in report["rows"]):
        ours = [row for row in report["rows"] if row["model"] == model]
        first, last = (100 * sum(row["ndcg_at_10"].values()) / len(row["ndcg_at_10"]) for row in (ours[0], ours[-1]))
        pairs = ours[-1]["pairs_seen"] - ours[0]["pairs_seen"]
        parts.append(f"{model} {first:.1f} -> {last:.1f} ({last - first:+.1f}) over {pairs:,} more pairs")
    return "; ".join(parts)


def share_of_queries(report: dict, value) -> float:
    """A per-task share over all the report's queries, in percent."""
    return 100 * sum(value(t) * t["queries"] for t in report["tasks"]) / sum(t["queries"] for t in report["tasks"])


def reasoned(report: dict) -> int:
    """How many queries reasoned under auto."""
    return round(sum(t["auto_reasoning_share"] * t["queries"] for t in report["tasks"]))


def reading_table(probe: dict) -> str:
    """Dev nDCG@10 x100 per task of the reading probe (research/reading_probe.py): the first search, the ceilings of
    reading k passages, the best untrained Rocchio PRF setting (by mean), the read vector; queries/s last."""
    rows = probe["rows"]
    names = {row["source"]: SHORT.get(SOURCE_TASKS.get(row["source"], ""), row["source"]) for row in rows}
    rocchio = max((key for key in rows[0] if key.startswith("rocchio")), key=lambda key: probe["mean"][key])
    reads = [key for key in rows[0] if key.startswith("read k") and not key.endswith("qps")]
    settings = [
        ("reasoning off (the first search)", "off"),
        *[(f"ceiling: the relevant document in the top {k} moved to rank 1", f"ceiling@{k}") for k in (3, 5)],
        (f"untrained Rocchio PRF ({rocchio.removeprefix('rocchio ')}, best on dev)", rocchio),
        *[(f"reading ({key.removeprefix('read ')})", key) for key in reads],
    ]
    lines = [
        "| setting | " + " | ".join(names[row["source"]] for row in rows) + " | mean |",
        "|---|" + "---:|" * (len(rows) + 1),
    ]
    for label, key in settings:
        lines.append(f"| {label} | " + " | ".join(f"{row[key]:.1f}" for row in rows) + f" | {probe['mean'][key]:.1f} |")
    for key in reads:
        speed = " | ".join(f"{row[f'{key} qps'] / row['off_qps']:.2f}" for row in rows)
        lines.append(f"| queries/s of both passes / reasoning off's ({key.removeprefix('read ')}) | {speed} | |")
    return "\n".join(lines)


def reading_verdict(probe: dict) -> str:
    """What the reading table says, from its numbers."""
    mean = probe["mean"]
    read = next(key for key in mean if key.startswith("read k"))
    rocchio = max((key for key in mean if key.startswith("rocchio")), key=mean.get)
    return (
        f"Mean dev nDCG@10: reasoning off {mean['off']:.1f}, reading {mean[read]:.1f}, the best Rocchio "
        f"{mean[rocchio]:.1f}; reading the top 3 could reach {mean['ceiling@3']:.1f}. The reader (trained on "
        f"{probe['reader_queries']:,} queries) is not shipped: the shipped model searches with reasoning off, and "
        "`search()` reads only with a model that has a reader."
    )


def best_on_dev(dev: dict, kinds: tuple[str, ...]) -> dict[str, str]:
    """Per kind of setting, the one with the best dev mean."""
    return {kind: max((key for key in dev["mean"] if key.startswith(kind)), key=dev["mean"].get) for kind in kinds}


def lexical_table(probes: dict[str, dict]) -> str:
    """nDCG@10 x100 per task of ``research/reading_probe.py --lexical``, dev and test: each kind of setting at its
    best on the dev mean, so the test rows were chosen before they were seen; all-MiniLM-L6-v2 at the same settings;
    the fine-tuned MiniLM at the settings its own dev split picks."""
    dev, test, minilm = probes["dev_lexical"], probes["test_lexical"], probes["test_lexical_minilm"]
    chosen = best_on_dev(dev, ("hybrid", "rerank", "judged", "rocchio"))
    tuned = best_on_dev(probes["dev_lexical_minilm_finetuned"], ("hybrid", "rocchio"))
    settings = [
        ("reasoning off (the first search)", "off"),
        ("BM25", "bm25"),
        (f"hybrid search ({chosen['hybrid'].removeprefix('hybrid ')})", chosen["hybrid"]),
        (f"the top k re-ordered by the hybrid score ({chosen['rerank'].removeprefix('rerank ')})", chosen["rerank"]),
        (f"lexically judged PRF ({chosen['judged'].removeprefix('judged ')})", chosen["judged"]),
        (f"untrained Rocchio PRF ({chosen['rocchio'].removeprefix('rocchio ')})", chosen["rocchio"]),
        ("ceiling: the relevant document in the top 3 moved to rank 1", "ceiling@3"),
    ]
    names = [SHORT.get(SOURCE_TASKS.get(row["source"], ""), row["source"]) for row in test["rows"]]
    lines = ["| split | setting | " + " | ".join(names) + " | mean |", "|---|---|" + "---:|" * (len(names) + 1)]
    finetuned = [
        ("cosine", "off"),
        (f"hybrid search ({tuned['hybrid'].removeprefix('hybrid ')}, best on its dev)", tuned["hybrid"]),
        (f"Rocchio PRF ({tuned['rocchio'].removeprefix('rocchio ')}, best on its dev)", tuned["rocchio"]),
    ]
    blocks = (
        ("dev", dev, "", settings),
        ("test", test, "", settings),
        ("test", minilm, "all-MiniLM-L6-v2: ", [("cosine", "off"), settings[2]]),
        ("test", probes["test_lexical_minilm_finetuned"], "all-MiniLM-L6-v2 fine-tuned (rebuilt): ", finetuned),
    )
    for split, probe, model, keys in blocks:
        for label, key in keys:
            cells = [f"{row[key]:.1f}" for row in probe["rows"]] + [""] * (len(names) - len(probe["rows"]))
            lines.append(f"| {split} | {model}{label} | " + " | ".join(cells) + f" | {probe['mean'][key]:.1f} |")
        if not model:
            speed = [f"{row['hybrid qps'] / row['off_qps']:.2f}" for row in probe["rows"]]
            speed += [""] * (len(names) - len(speed))
            lines.append(f"| {split} | queries/s of hybrid search / reasoning off's | " + " | ".join(speed) + " | |")
    return "\n".join(lines)


def index_table(report: dict) -> str:
    rows = {(row["model"], row["source"], row["documents"]): row for row in report["sweep"]}
    lines = [
        "| source | documents | all-MiniLM-L6-v2 docs/s | search-r3 docs/s | ratio | MiniLM peak MB | search-r3 peak MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (model, source, documents), mini in rows.items():
        ours = rows.get(("search-r3", source, documents))
        if model != "all-MiniLM-L6-v2" or ours is None:
            continue
        lines.append(
            f"| {source} | {documents:,} | {mini['documents_per_s']:.1f} | {ours['documents_per_s']:.1f} | "
            f"{mini['documents_per_s'] / ours['documents_per_s']:.1f}x | {mini['peak_rss_mb']:.0f} | "
            f"{ours['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def encode_table(report: dict) -> str:
    lines = [
        "| precision | batch | search-r3 queries/s (reasoning) | raw `generate` queries/s | vs naive |",
        "|---|---:|---:|---:|---:|",
    ]
    for run in report["runs"]:
        for batch, row in run["queries"].items():
            lines.append(
                f"| {run['precision']} | {batch} | {row['search_r3_queries_per_s']:.2f} | "
                f"{row['raw_generate_queries_per_s']:.2f} | {row['speedup_vs_naive']:.1f}x |"
            )
    return "\n".join(lines)


def rl_table(report: dict) -> str:
    lines = ["| documents | vectors | cached step (s) | re-encode step (s) |", "|---:|---|---:|---:|"]
    for row in report["rows"]:
        estimate = "" if row["reencode_measured"] else " (estimated)"
        lines.append(
            f"| {row['documents']:,} | {row['vectors']} | {row['step_cached_s']:.1f} | "
            f"{row['step_reencode_s']:.1f}{estimate} |"
        )
    return "\n".join(lines)


def finetuned_verdict(probes: dict[str, dict]) -> str:
    """What BM25 does for the fine-tuned MiniLM, against what it does for search-r3, from the same probes."""
    ours, dev, test = (
        probes["test_lexical"],
        probes["dev_lexical_minilm_finetuned"],
        probes["test_lexical_minilm_finetuned"],
    )
    hybrid, ours_hybrid = (
        best_on_dev(dev, ("hybrid",))["hybrid"],
        best_on_dev(probes["dev_lexical"], ("hybrid",))["hybrid"],
    )
    names = {row["source"]: SHORT.get(SOURCE_TASKS.get(row["source"], ""), row["source"]) for row in test["rows"]}
    theirs = {row["source"]: row[hybrid] for row in test["rows"]}
    leads = [names[row["source"]] for row in ours["rows"] if row[ours_hybrid] > theirs[row["source"]]]
    trails = [
        f"{names[row['source']]} ({row[ours_hybrid]:.1f} against {theirs[row['source']]:.1f})"
        for row in ours["rows"]
        if row[ours_hybrid] <= theirs[row["source"]]
    ]
    gap = test["mean"][hybrid] - ours["mean"][ours_hybrid]
    return (
        f"The fair baseline with BM25: the fine-tuned MiniLM gains {test['mean'][hybrid] - test['mean']['off']:+.1f} "
        f"from BM25 ({test['mean']['off']:.1f} -> {test['mean'][hybrid]:.1f}; dev {dev['mean']['off']:.1f} -> "
        f"{dev['mean'][hybrid]:.1f}), where search-r3 gains {ours['mean'][ours_hybrid] - ours['mean']['off']:+.1f}; "
        f"the hybrid search-r3 ({ours['mean'][ours_hybrid]:.1f}) {'trails' if gap > 0 else 'leads'} the hybrid "
        f"fine-tuned MiniLM by {abs(gap):.1f} on the test mean, leads it on {', '.join(leads) or 'no task'} and trails "
        f"it on {', '.join(trails) or 'no task'}. This MiniLM was fine-tuned again for the comparison "
        "(`python benchmarks/finetune_minilm.py` on a 2-core AMD EPYC), on training splits identical to the recipe's "
        "whose mined negatives differ ([training.md](training.md)); the run in the tables above is the recipe's own. "
        f"Commands: `{dev['command']}`, the same with `--split test` "
        "(`research/results/reading_probe_{dev,test}_lexical_minilm_finetuned.json`)."
    )


def evaluation_doc() -> str:
    test, dev = load("quality_test_fair.json"), load("quality_dev_fair.json")
    reasoning = load("reasoning_dev_auto.json")
    index, encode, rl = load("index_speed.json"), load("encode_speed.json"), load("rl_env_speed.json")
    scaling = json.loads((RESEARCH / "data_scaling.json").read_text())
    reading = json.loads((RESEARCH / "reading_probe_dev_reader.json").read_text())
    lexical = {name: json.loads((RESEARCH / f"reading_probe_{name}.json").read_text()) for name in LEXICAL}
    segments = "; ".join(
        f"segment {k}: " + ", ".join(f"{name} {count:,}" for name, count in stream["drawn"].items())
        for k, stream in enumerate(scaling["streams"], 1)
    )
    return f"""# Evaluation

<!-- Written by benchmarks/evaluation_doc.py from benchmarks/results/; edit that script, not this file. -->

All figures were measured on 2-core x86-64 cloud CPUs (AMD EPYC, Intel Xeon with and without AVX512-BF16; no
GPU); the machine string of each run is in its results file. Scores are nDCG@10 / Recall@10 x100 on the local tasks
(see [Tasks](#tasks)); the shipped model runs at its saved settings (reasoning off, `max_seq_length` 160,
the adapter merged by `st-search-r3 install`).

## Quality, test splits

`{test["command"]}` (`benchmarks/results/quality_test_fair.json`)

{quality_table(test)}

![nDCG@10 on the test splits](../benchmarks/results/quality_test_fair.png)

## Quality, dev splits

`{dev["command"]}` (`benchmarks/results/quality_dev_fair.json`)

{quality_table(dev)}

## More data

`python research/data_scaling.py` (`research/results/data_scaling.json`): dev nDCG@10 against the training pairs
each model has seen. Both start where their recipes end, after the same 9,021 triplets (search-r3: the shipped
weights; MiniLM: `benchmarks/finetune_minilm.py`), and continue on the same stream of triplets never drawn before
({segments}), at a constant learning rate after a short warm-up, a checkpoint kept every 1,600 pairs. search-r3 at 160
tokens, reasoning off.

{scaling_table(scaling)}

![dev nDCG@10 against training pairs seen](../research/results/data_scaling.png)

Mean dev nDCG@10: {scaling_gains(scaling)}.

## Reasoning off, on and auto

`{reasoning["command"]}` (`benchmarks/results/reasoning_dev_auto.json`; {reasoning["model"]}): the shipped adapter
with the stop head that `train/stop.py --config train/configs/stop.yaml --model src/st_search_r3/weights` fitted on
training queries (`runs/stop_head`). Every dev query of each task. "On" reasons for every query (the head still ends the reasoning), "auto"
where the model's first token is not `<|embed_token|>`; "oracle off / on" picks the better of off and on per query, the
most a perfect choice could reach. "Self-ended": the model wrote `<|embed_token|>` itself (under auto, a query that
stopped at once did). "Looping": a token 4-gram 3+ times. Sample traces: `reasoning_dev_auto.md`.

{reasoning_table(reasoning)}

![nDCG@10 by reasoning mode, dev](../benchmarks/results/reasoning_dev_auto.png)

The head chose to reason for {reasoned(reasoning)} of {sum(t["queries"] for t in reasoning["tasks"])} dev queries: neither the state before the reasoning nor the state after it
tells when the 135M model's reasoning helps (research log, 0.5.0), so the learned choice is, rightly, to answer
directly; auto then equals reasoning off on every task. The package ships the head that the same command, rerun,
fitted (`src/st_search_r3/weights/stop_head.safetensors`): it reasons for 5 of the 865 dev queries, and every task's
dev nDCG@10 under auto equals reasoning off's. Auto costs a second short forward pass (the decision under
the reasoning prompt, then the direct vector): about half the speed of reasoning off. The head's ending term alone
takes always-on reasoning from 0-3% self-ended without a head (`reasoning_dev_oracle.md`) to
{share_of_queries(reasoning, lambda t: t["on_traces"]["self_ended"]):.0f}%.

## Reasoning that reads

`{reading["command"]}` (`research/results/reading_probe_dev_reader.json`): dev nDCG@10 of every query of each task
from one set of document vectors and one first search (the shipped model, reasoning off). The ceilings bound what
reading can win: the relevant document, where the first search put it in the top k, moved to rank 1. Rocchio PRF
adds the mean of the top k document vectors to the query vector (weight b), untrained; every setting of the grid
(k 1, 3, 5; b 0.25, 0.5, 1.0) is below reasoning off on the mean, as reported for one-relevant-document sets. Reading
is the reader `train/read.py` trained on the shipped model ([training.md](training.md#reasoning-that-reads-trainreadpy)),
fused with the direct vector; queries/s counts both passes (here each read pair also embeds its query directly
again, which `search()` does not).

{reading_table(reading)}

{reading_verdict(reading)}

### BM25 beside the dense search

`{lexical["dev_lexical"]["command"]}`, the same with `--split test`, and with `--split test --encoder all-MiniLM-L6-v2`
(`research/results/reading_probe_{{dev,test}}_lexical.json`, `reading_probe_test_lexical_minilm.json`). Where the
model's own states cannot tell which of the top passages answers (research log), the words the query shares with
each can. Hybrid search adds to each document's cosine its BM25 score over the query's best, times a weight
(`search(..., lexical_weight=0.1)`, [usage.md](usage.md#bm25-beside-the-dense-search)); the re-ordering and the
judged PRF use the same score on the first search's top k only (the PRF's softmax weights pull the query vector
toward the passages, and that vector searches the whole corpus). Each kind at its best setting on the dev mean.
Queries/s count embedding the queries and, for the hybrid search, indexing the task's corpus for BM25 and scoring it:

{lexical_table(lexical)}

{finetuned_verdict(lexical)}

## Indexing speed

`{index["command"]}` (`benchmarks/results/index_speed.json`, {index["machine"]}): documents embedded per second
through `encode_corpus`, each size in its own process, with its peak resident memory.

{index_table(index)}

![indexing speed](../benchmarks/results/index_speed.png)

## Query speed with reasoning

`python {encode["command"]}` (`benchmarks/results/encode_speed.json`, {encode["machine"]}; {encode["data"]},
reasoning budget {encode["max_reasoning_tokens"]} tokens). Raw `generate` is plain batched generation with the same
prompts and stop tokens (the ceiling); naive generates per query, then re-encodes prompt + reasoning.

{encode_table(encode)}

## RL environment speed

`{rl["command"]}` (`benchmarks/results/rl_env_speed.json`, {rl["machine"]}; {rl["corpus"]}): one GRPO step of 2
queries x 4 sampled reasonings with the cached corpus index against re-encoding the corpus every step. Growth from
1,000 to 100,000 documents: cached {rl["growth_cached"]:.2f}x, re-encode {rl["growth_reencode"]:.1f}x.

{rl_table(rl)}

## Tasks

| task | query -> document | source | dev | test |
|---|---|---|---|---|
| `SearchR3WordNetRetrieval` | definition -> words, hypernyms, usage | WordNet 3.0 | 200 q, 2,000 docs | 300 q, 3,000 docs |
| `SearchR3DebianRetrieval` | package summary -> long description | Debian 12 package descriptions | 200 q, 1,964 docs | 300 q, 3,000 docs |
| `SearchR3PythonCodeRetrieval` | first docstring line -> function code | Python 3.11 standard library | 194 q, 194 docs | 300 q, 551 docs |
| `SearchR3ManPagesRetrieval` | NAME summary -> DESCRIPTION | Linux man-pages 6.03 | 102 q, 102 docs | 131 q, 131 docs |
| `SearchR3InfoManualsRetrieval` | section title -> section text | GNU info manuals of 13 Debian packages | 96 q, 96 docs | 118 q, 118 docs |
| `SearchR3FAQRetrieval` | question -> answer | the Perl FAQ and the Z Shell FAQ (Debian 12) | 73 q, 73 docs | 98 q, 98 docs |
| `SearchR3VimFAQRetrieval` | question -> answer, never trained on | the Vim FAQ (Debian 12) | - | 300 q, 371 docs |
| `SearchR3WordNetDemo` | definition -> words (ships in the package) | WordNet 3.0 test split sample | - | 40 q, 600 docs |

Splits are disjoint by synset, package group, module, page, section or question: nothing in test is seen in
training, not even as a negative. The two FAQ tasks are the question-style ones; the Vim FAQ is held out of
training entirely and has no dev split. `python -m st_search_r3.data.build` builds them (see [training.md](training.md#data)).

## Commands

```bash
python -m st_search_r3.data.build                 # once: the tasks' data
python benchmarks/quality.py --split test         # every baseline on every task (scores cached per revision)
python benchmarks/reasoning_report.py --split dev # reasoning on vs off, per-query wins and losses, traces
python benchmarks/reasoning_report.py --split dev --samples 4   # + sampled reasonings and the per-query oracle
python benchmarks/finetune_minilm.py              # the fair baseline: MiniLM fine-tuned on the recipe's triplets
python research/data_scaling.py                   # dev quality against training pairs seen, both models
python research/sft_throughput.py --evaluate      # training pairs/s before and after the CPU speed-ups
python benchmarks/index_speed.py                  # documents/s beside all-MiniLM-L6-v2 (make bench-index)
python benchmarks/encode_speed.py                 # queries/s with reasoning (make bench-speed)
python benchmarks/rl_env_speed.py                 # RL step time, cached corpus vs re-encoding (make bench-rl-env)
python research/corpus_refresh_ranks.py           # the RL corpus index on 1 and 2 processes
python research/reasoning_memory_size.py          # memory of the reasoning memory at 100,000 queries
python benchmarks/gpu_smoke.py                    # the GPU path end to end (needs a CUDA device)
python benchmarks/evaluation_doc.py               # this page, the README's table and the model card's scores
```
"""


def headline() -> str:
    test = load("quality_test_fair.json")
    return f"{HEADLINE[0]}\n{quality_table(test, recall=False)}\n{HEADLINE[1]}"


def training_cost() -> str:
    """Training time and pairs/s of the shipped weights (their record) and of the fair baseline (its record), which
    trained on the same triplets."""
    record = json.loads((MODEL_CARD_SCORES.parent / "training_record.json").read_text())
    parts, seconds = len(record["previous_stages"]) + 1, record["total_train_seconds"]
    minilm = load("minilm_finetuned_record.json")
    triplets = minilm["triplets"]
    return (
        f"**Training**: {triplets:,} triplets in {parts} parts, {seconds:,.0f} s on 2-core AMD EPYC CPUs, "
        f"{triplets / seconds:.2f} pairs/s (`training_record.json`). The fair baseline: the same triplets in "
        f"{minilm['train_seconds_this_run']:,.0f} s on {minilm['machine']}, {minilm['pairs_per_second']:.2f} pairs/s "
        "(`benchmarks/results/minilm_finetuned_record.json`).\n"
    )


def model_card_scores() -> str:
    """The scores section of the shipped model's card (``st-search-r3 install`` puts it in the README it writes)."""
    test = load("quality_test_fair.json")
    return (
        "**Scores** (nDCG@10 / Recall@10 x100 on the test splits of the local tasks, the installed model at its saved "
        "settings; all-MiniLM-L6-v2 fine-tuned is the fair baseline, trained on the same triplets as these weights: "
        "`benchmarks/finetune_minilm.py`). "
        f"Command: `{test['command']}`.\n\n{quality_table(test)}\n{training_cost()}"
    )


def readme_with_headline(text: str) -> str:
    start, end = text.index(HEADLINE[0]), text.index(HEADLINE[1]) + len(HEADLINE[1])
    return text[:start] + headline() + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that the files are up to date")
    args = parser.parse_args(argv)
    wanted = {
        EVALUATION: evaluation_doc(),
        README: readme_with_headline(README.read_text()),
        MODEL_CARD_SCORES: model_card_scores(),
    }
    stale = [path for path, text in wanted.items() if not path.is_file() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is not what benchmarks/results/ gives: run benchmarks/evaluation_doc.py")
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted[path])
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
