"""Every script a user runs answers ``--help``: a renamed import or a broken argument parser fails here, not for
the user. One interpreter runs them all (``runpy``), so each script's imports are paid once."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

SCRIPTS = sorted(
    str(path.relative_to(ROOT))
    for folder in ("benchmarks", "train", "research")
    for path in (ROOT / folder).glob("*.py")
)
RUN_ALL = """
import contextlib, io, json, runpy, sys
helps = {}
for script in sys.argv[1:]:
    sys.argv = [script, "--help"]
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            runpy.run_path(script, run_name="__main__")
            print(script, "ran instead of printing its help", file=sys.stderr); sys.exit(1)
        except SystemExit as stop:
            if stop.code not in (0, None):
                raise
    assert "usage" in out.getvalue().lower(), script
    helps[script] = out.getvalue()
print(json.dumps(helps))
"""
DOCS = ["README.md", "Makefile", *sorted(str(path.relative_to(ROOT)) for path in (ROOT / "docs").glob("*.md"))]
DOCUMENTED = re.compile(r"python ((?:benchmarks|train|research)/\w+\.py)([^`#|\n]*)")


@pytest.fixture(scope="module")
def helps() -> dict[str, str]:
    result = subprocess.run([sys.executable, "-c", RUN_ALL, *SCRIPTS], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_every_script_answers_help(helps):
    assert len(helps) == len(SCRIPTS) >= 15


def test_every_documented_command_names_a_script_its_flags_and_its_files(helps):
    """Each ``python <folder>/<script>.py ...`` line of the README, the Makefile and docs/: the script exists,
    every ``--flag`` it passes is one the script accepts, and every config file it names exists."""
    commands = [(doc, *match) for doc in DOCS for match in DOCUMENTED.findall((ROOT / doc).read_text())]
    assert len(commands) >= 30
    for doc, script, arguments in commands:
        assert script in helps, f"{doc}: {script} does not exist"
        for flag in re.findall(r"(?<![\w-])--[a-z][\w-]*", arguments):
            assert re.search(rf"{flag}\b", helps[script]), f"{doc}: {script} has no {flag}"
        for path in re.findall(r"train/configs/[\w./-]+\.yaml", arguments):
            assert (ROOT / path).is_file(), f"{doc}: {path} does not exist"


def test_module_entry_points_answer_help():
    for module in ("st_search_r3.data.build", "st_search_r3.data.questions", "st_search_r3.cli"):
        result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 0 and "usage" in result.stdout.lower(), (module, result.stderr[-2000:])


def documented_own_data_lines(path) -> list[str]:
    """The ``python train/... --train_data ...`` lines of a doc's code blocks, comments cut off."""
    lines = [line.split("  #")[0].strip() for line in (ROOT / path).read_text().splitlines()]
    return [line for line in lines if line.startswith("python train/") and "--train_data" in line]


# What makes a documented command small enough for the tiny model, appended to it as a user would add flags.
TINY = {
    "sft.py": ["--max_steps", "2", "--per_device_train_batch_size", "4", "--max_train_pairs", "8", "--bf16", "false",
               "--max_seq_length", "256", "--max_reasoning_tokens", "4", "--lora_r", "4", "--eval_steps", "2",
               "--save_steps", "2"],
    "rl.py": ["--max_steps", "1", "--num_generations", "2", "--per_device_train_batch_size", "2",
              "--max_completion_length", "5", "--train_queries", "2", "--corpus_size", "10", "--refresh_size", "2",
              "--eval_queries", "2", "--eval_documents", "10", "--ranking_k", "5", "--save_steps", "1", "--bf16",
              "false", "--use_vllm", "false", "--activation_checkpointing", "false"],
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("doc", ["README.md", "docs/training.md"])
def test_the_documented_own_data_lines_run_as_printed(doc, tiny_llm, tiny_data, tmp_path):
    """Training on your own files needs nothing the built data has: no pin, no built dev split (the data folder
    here is empty), no reasoning targets; the lines of the docs run in order, in a folder with the files they
    name, each with only the flags that make it tiny."""
    import json
    import shlex

    from st_search_r3.data.beir import save_beir
    from st_search_r3.data.retrieval_split import RetrievalSplit

    splits = {name: RetrievalSplit.load(tiny_data / "wordnet" / name) for name in ("train", "dev")}
    save_beir(tmp_path / "my_beir", splits)
    train = splits["train"]
    pairs = [(train.queries[q], train.corpus[next(iter(train.qrels[q]))]) for q in list(train.qrels)[:8]]
    rows = [{"anchor": anchor, "positive": positive} for anchor, positive in pairs]
    (tmp_path / "triplets.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    lines = documented_own_data_lines(doc)
    assert [shlex.split(line)[1] for line in lines] == ["train/sft.py", "train/rl.py"], lines
    env = {**os.environ, "ST_SEARCH_R3_DATA": str(tmp_path / "no-built-data")}
    for line in lines:
        words = shlex.split(line)
        script = words[1].split("/")[-1]
        extra = TINY[script] + (["--base_model", tiny_llm] if script == "sft.py" else [])
        command = [sys.executable, str(ROOT / words[1]), *words[2:], *extra]
        result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
        assert result.returncode == 0, (line, result.stderr[-3000:])
    sft_line = shlex.split(lines[0])
    output = sft_line[sft_line.index("--output_dir") + 1] if "--output_dir" in sft_line else "runs/sft_all"
    final = tmp_path / output / "final"
    record = json.loads((final / "training_record.json").read_text())
    assert record["config"]["data_sha256"] is None and record["config"]["reasoning_queries"] == 0
    assert json.loads((final / "search_r3_config.json").read_text())["reasoning"] is False
    assert any("eval_my_beir-dev_cosine_ndcg@10" in row for row in record["log_history"]), "--eval_data evaluated"
