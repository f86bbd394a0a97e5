from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import constants
from sentence_transformers import SentenceTransformer

from st_search_r3.install import install
from tests.conftest import run_train_script

ROOT = Path(__file__).parent.parent
FIXTURES = Path(__file__).parent / "fixtures"


def run_sft(tiny_llm, data, output, *extra):
    return run_train_script(
        "sft.py", "sft_smoke.yaml", "--base_model", tiny_llm, "--data_dir", data, "--output_dir", output, *extra
    )


@pytest.mark.slow
def test_smoke_config_trains_two_steps_and_saves_a_loadable_model(tiny_llm, tiny_data, tmp_path, monkeypatch):
    result = run_sft(tiny_llm, tiny_data, tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    final = tmp_path / "run" / "final"
    assert (final / "adapter_model.safetensors").is_file() and not (final / "model.safetensors").exists()
    record = json.loads((final / "training_record.json").read_text())
    assert record["steps"] == 2 and record["pairs_this_run"] == 8 and record["pairs_per_second"] > 0
    assert record["cpu_seconds_this_run"] > 0
    assert len(record["data_sha256"]) == len(record["triplets_sha256"]) == 64, "the splits and mined triplets used"
    assert (tmp_path / "run" / "curves.png").is_file()
    assert any("eval_wordnet-dev_cosine_ndcg@10" in row for row in record["log_history"])
    # Half of the anchors were trained after the base model's reasoning, generated once and kept.
    (cache_file,) = (tiny_data / "reasoning").glob("*.jsonl")
    reasoning = [json.loads(line) for line in cache_file.open()]
    assert len(reasoning) == 4 and all(isinstance(row["reasoning"], str) for row in reasoning)
    assert any("loss/infonce" in row for row in record["log_history"]), "the loss terms reach the logs"

    model = SentenceTransformer(str(final), trust_remote_code=True)
    model[0].matmul_precision = "float32"
    embeddings = model.encode_document(["a wild cat", "a sponge"])
    assert embeddings.shape == (2, 64) and np.isfinite(embeddings).all()

    # `st-search-r3 install --weights` merges the adapter into the base: same vectors, no adapter left.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    merged_folder = install(weights=final)
    assert not (merged_folder / "adapter_config.json").exists()
    trained, installed = (
        json.loads((folder / "search_r3_config.json").read_text()) for folder in (final, merged_folder)
    )
    assert installed == trained, "every setting, max_seq_length included, carries over"
    card = (merged_folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: sentence-transformers\n") and "pip install st-search-r3" in card
    assert "LoRA r=4" in card and str(tmp_path) not in card, "the card names the training, not a local path"
    assert "pairs/s" in card and "of CPU time" in card
    assert (merged_folder / "training_record.json").is_file(), "the record the card points to is there"
    merged = SentenceTransformer("search-r3", trust_remote_code=True)
    merged[0].matmul_precision = "float32"  # exact, to compare with the adapter's vectors at 1e-5
    np.testing.assert_allclose(merged.encode_document(["a wild cat", "a sponge"]), embeddings, atol=1e-5)

    resumed = run_sft(tiny_llm, tiny_data, tmp_path / "run", "--resume", "true", "--max_steps", "3")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "checkpoint-2" in resumed.stderr, "resumed from the last checkpoint, not from scratch"
    resumed_record = json.loads((final / "training_record.json").read_text())
    assert resumed_record["steps"] == 3 and resumed_record["pairs_this_run"] == 4
    segments = resumed_record["segments"]
    assert [(s["from_step"], s["to_step"]) for s in segments] == [(0, 2), (2, 3)], "the record names every segment"
    assert resumed_record["train_seconds_this_run"] == pytest.approx(sum(s["seconds"] for s in segments))
    assert resumed_record["cpu_seconds_this_run"] == pytest.approx(sum(s["cpu_seconds"] for s in segments))


def test_resume_skips_a_checkpoint_cut_short(tmp_path):
    from transformers.trainer_utils import get_last_checkpoint

    from st_search_r3.training.checkpoints import last_complete_checkpoint

    for step, complete in [(5, True), (10, True), (15, False)]:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    assert last_complete_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-10")
    assert get_last_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-15"), "why the library's is not used"
    assert last_complete_checkpoint(str(tmp_path / "nothing")) is None


def test_reasoning_cache_is_keyed_by_weights_prompt_and_budget(tiny_llm, tmp_path):
    import torch

    from st_search_r3 import SearchR3
    from st_search_r3.training.reasoning_cache import cache_path

    module = SearchR3(tiny_llm, max_reasoning_tokens=4, max_seq_length=192)
    path = cache_path(tmp_path, module)
    assert path == cache_path(tmp_path, SearchR3(tiny_llm, max_reasoning_tokens=4, max_seq_length=192))
    assert path != cache_path(tmp_path, SearchR3(tiny_llm, max_reasoning_tokens=5, max_seq_length=192))
    edited = SearchR3(tiny_llm, max_reasoning_tokens=4, max_seq_length=192, reasoning_prompt="Think, then embed.")
    assert path != cache_path(tmp_path, edited)
    with torch.no_grad():
        module.auto_model.get_input_embeddings().weight[0, 0] += 1.0
    assert path != cache_path(tmp_path, module), "other weights, other cache"


def test_scripts_say_config_first_and_name_the_data_build(tiny_llm, tmp_path):
    for script in ("sft.py", "rl.py"):
        help_text = subprocess.run(
            [sys.executable, str(ROOT / "train" / script), "--help"], capture_output=True, text=True, cwd=ROOT
        ).stdout
        assert "--config YAML (default:" in help_text.splitlines()[0]
    missing = run_sft(tiny_llm, tmp_path / "no-data", tmp_path / "run")
    assert missing.returncode != 0 and "python -m st_search_r3.data.build" in missing.stderr


@pytest.mark.slow
def test_smoke_config_trains_with_the_format_term_and_fused_views(tiny_llm, tiny_data, tmp_path):
    extra = ["--format_weight", "1.0", "--no_repeat_ngram_size", "2", "--fuse_direct_embedding", "true"]
    result = run_sft(tiny_llm, tiny_data, tmp_path / "run", *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    final = tmp_path / "run" / "final"
    record = json.loads((final / "training_record.json").read_text())
    assert record["steps"] == 2
    assert any("loss/format" in row for row in record["log_history"])
    settings = json.loads((final / "search_r3_config.json").read_text())
    assert settings["no_repeat_ngram_size"] == 2 and settings["fuse_direct_embedding"] is True
    (cache,) = (tiny_data / "reasoning").glob("*.jsonl")
    rows = [json.loads(line) for line in cache.read_text().splitlines()]
    assert rows and all(isinstance(row["reasoning"], str) for row in rows), "the base model's greedy reasoning"


@pytest.mark.slow
def test_smoke_config_trains_with_a_teachers_distill_term(tiny_llm, tiny_data, tiny_teacher, tmp_path):
    extra = ["--teacher_model", tiny_teacher, "--distill_weight", "0.5", "--teacher_temperature", "0.1"]
    result = run_sft(tiny_llm, tiny_data, tmp_path / "run", *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "run" / "final" / "training_record.json").read_text())
    assert (record["config"]["teacher_model"], record["config"]["distill_weight"]) == (tiny_teacher, 0.5)
    # Anchors with and without reasoning both carried the teacher's vectors to the loss.
    assert sum("loss/distill" in row for row in record["log_history"]) >= 1 and record["steps"] == 2


def test_distill_weight_and_teacher_go_together():
    from st_search_r3.training.config import SearchR3SFTConfig

    with pytest.raises(ValueError, match="teacher_model"):
        SearchR3SFTConfig(distill_weight=0.5)
    with pytest.raises(ValueError, match="teacher_model"):
        SearchR3SFTConfig(teacher_model="all-MiniLM-L6-v2")


def test_source_weights_repeat_or_subsample_a_source(tiny_data):
    from collections import Counter
    from dataclasses import replace

    from st_search_r3.training.config import SearchR3SFTConfig
    from st_search_r3.training.sft_data import load_triplets

    config = SearchR3SFTConfig(data_dir=str(tiny_data), sources=["wordnet"], max_train_pairs=10_000)
    once = Counter(load_triplets(config)[0]["anchor"])
    twice_and_half = Counter(load_triplets(replace(config, source_weights=[2.5]))[0]["anchor"])
    half = Counter(load_triplets(replace(config, source_weights=[0.5]))[0]["anchor"])
    total = sum(once.values())
    assert sum(twice_and_half.values()) == 2 * total + round(0.5 * total)
    assert all(twice_and_half[anchor] >= 2 * count for anchor, count in once.items())
    assert sum(half.values()) == round(0.5 * total) and not set(half) - set(once)
    with pytest.raises(ValueError, match="source_weights"):
        load_triplets(replace(config, source_weights=[1.0, 1.0]))


def test_build_model_applies_the_lora_shape_of_the_config(tiny_llm):
    from st_search_r3.training.config import SearchR3SFTConfig
    from st_search_r3.training.sft_data import build_model

    config = SearchR3SFTConfig(
        base_model=tiny_llm, max_seq_length=256, lora_r=2, lora_alpha=4, lora_dropout=0.1, attn_implementation="sdpa"
    )
    module = build_model(config)[0]
    lora = module.auto_model.peft_config["default"]
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (2, 4, 0.1)
    assert module.auto_model.get_base_model().config._attn_implementation in ("sdpa", "search_r3_packed")
    assert lora.base_model_name_or_path == tiny_llm


@pytest.fixture
def user_data(tiny_data, tmp_path):
    """A JSONL of triplets and a BEIR folder, as a user brings them (made from the WordNet fixture)."""
    from datasets import load_from_disk

    from st_search_r3.data.beir import save_beir
    from st_search_r3.data.retrieval_split import RetrievalSplit

    triplets = load_from_disk(str(tiny_data / "wordnet" / "train_triplets")).select_columns(["anchor", "positive"])
    triplets.to_json(str(tmp_path / "triplets.jsonl"))
    splits = {name: RetrievalSplit.load(tiny_data / "wordnet" / name) for name in ("train", "dev")}
    save_beir(tmp_path / "beir", splits)
    return tmp_path / "triplets.jsonl", tmp_path / "beir"


@pytest.mark.slow
def test_sft_trains_on_a_users_jsonl_and_evaluates_on_a_beir_folder(tiny_llm, user_data, tmp_path):
    triplets, beir = user_data
    extra = ["--train_data", triplets, "--eval_data", beir, "--data_sha256", "null", "--reasoning_queries", "0"]
    result = run_sft(tiny_llm, tmp_path / "no-built-data", tmp_path / "run", *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "run" / "final" / "training_record.json").read_text())
    assert record["draw"]["sizes"] == {str(triplets): len(triplets.read_text().splitlines())}
    assert any("eval_beir-dev_cosine_ndcg@10" in row for row in record["log_history"]), "the BEIR dev split scored"
    assert len(record["data_sha256"]) == 64


def test_bad_training_rows_stop_the_run_naming_the_row_and_leave_no_model(tiny_llm, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"anchor": "big cat", "positive": "lion"}\n{"anchor": "sea animal", "positive": ""}\n')
    result = run_sft(tiny_llm, tmp_path, tmp_path / "run", "--train_data", bad, "--reasoning_queries", "0")
    assert result.returncode != 0
    assert f"{bad}, row 1, column 'positive': empty text" in result.stderr
    assert not (tmp_path / "run" / "final").exists()


def test_native_cpu_bf16_reads_the_cpu_flags(tmp_path):
    from st_search_r3.training.config import native_cpu_bf16

    emulated, native = tmp_path / "emulated", tmp_path / "native"
    emulated.write_text("flags\t\t: fpu sse avx2 avx512f avx512bw\n")
    native.write_text("flags\t\t: fpu sse avx2 avx512f avx512bw avx512_bf16\n")
    assert not native_cpu_bf16(emulated)
    assert native_cpu_bf16(native)
    assert native_cpu_bf16(tmp_path / "absent")  # no way to tell: the user's choice stands


@pytest.mark.parametrize("native", [True, False])
def test_bf16_autocast_is_dropped_only_where_the_cpu_emulates_it(tmp_path, monkeypatch, native):
    from sentence_transformers import SentenceTransformerTrainingArguments

    from st_search_r3.training import config

    monkeypatch.setattr(config, "native_cpu_bf16", lambda: native)
    args = SentenceTransformerTrainingArguments(output_dir=str(tmp_path), use_cpu=True, bf16=True)
    config.drop_emulated_bf16(args)
    assert args.bf16 is native
    assert args.mixed_precision == ("bf16" if native else "no")


@pytest.mark.parametrize("native", [True, False])
def test_reader_and_other_autocast_users_take_bf16_only_where_the_cpu_has_it(monkeypatch, native):
    from st_search_r3.training import config

    monkeypatch.setattr(config, "native_cpu_bf16", lambda: native)
    assert config.cpu_bf16(True) is native
    assert config.cpu_bf16(False) is False


def test_own_training_data_drops_what_belongs_to_the_built_sources():
    from sentence_transformers import SentenceTransformerTrainingArguments

    from st_search_r3.training.config import SearchR3SFTConfig, parse_config

    def parse(*argv):
        types = (SearchR3SFTConfig, SentenceTransformerTrainingArguments)
        return parse_config(types, ROOT / "train/configs/sft_all.yaml", "", argv=list(argv))

    recipe, args = parse()
    assert recipe.data_sha256 and recipe.triplets_sha256 and recipe.reasoning_queries == 600
    assert recipe.eval_task == "wordnet"
    mine, args = parse("--train_data", "mine.jsonl")
    assert (mine.data_sha256, mine.triplets_sha256, mine.reasoning_queries, mine.eval_task) == (None, None, 0, None)
    assert args.eval_strategy == "no", "nothing to evaluate unless --eval_data is given"
    mine, args = parse("--train_data=mine.jsonl", "--eval_data", "my_beir", "--reasoning_queries", "5")
    assert mine.reasoning_queries == 5 and mine.eval_data == "my_beir" and args.eval_strategy == "steps"
