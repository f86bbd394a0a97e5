"""`make sft` rebuilds the shipped adapter: each recipe part pins its data and draws the triplets its run drew."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from datasets import Dataset, concatenate_datasets

from st_search_r3.training.recipe import check_data, data_sha256, draw_rows, rows_sha256, split_files

ROOT = Path(__file__).parent.parent
# Recipe part -> its run's committed record and how many triplets it drew.
PARTS = {"sft_all": ("all", 4000), "sft_focus": ("focus", 2014), "sft_info": ("info", 3007)}
# The runs of the first two parts named the 13-package info-manual build "infomanuals"; it is now built as
# "infomanuals_core" (byte-identical files: their hashes below), and "infomanuals" adds the supplement.
RENAMED = {"sft_all": "infomanuals_core", "sft_focus": "infomanuals_core"}


@pytest.mark.parametrize("part", PARTS)
def test_each_recipe_part_pins_the_data_and_the_draw_of_its_shipped_run(part):
    folder, drawn = PARTS[part]
    config = yaml.safe_load((ROOT / "train" / "configs" / f"{part}.yaml").read_text())
    record = json.loads((ROOT / "benchmarks" / "results" / "sft_runs" / folder / "training_record.json").read_text())
    # The run's own files, hash by hash, are the files the recipe pins: its splits, and its mined triplets.
    files = record["data_sha256"]
    if part in RENAMED:
        files = {name.replace("infomanuals/", f"{RENAMED[part]}/"): digest for name, digest in files.items()}
    assert data_sha256(files) == record["recipe"]["data_sha256"]
    assert data_sha256(split_files(files)) == config["data_sha256"]
    assert data_sha256(split_files(files, mined=True)) == config["triplets_sha256"]
    # The run's settings are the recipe's (the first parts' source renamed as above).
    run = record["config"]
    sources = [RENAMED.get(part, s) if s == "infomanuals" else s for s in run["sources"]]
    assert (sources, run.get("source_weights"), run["max_train_pairs"]) == (
        config["sources"],
        config.get("source_weights"),
        config["max_train_pairs"],
    )
    assert record["training_arguments"]["seed"] == config["seed"]
    # Recomputed from the config and the sizes of the pinned data: the same rows, in the same order.
    sizes = record["recipe"]["draw"]["sizes"]
    assert list(sizes) == config["sources"]
    rows = draw_rows(sizes, config.get("source_weights"), config["max_train_pairs"], config["seed"])
    assert len(rows) == drawn and rows_sha256(rows) == record["recipe"]["draw"]["rows_sha256"]


def test_shipped_weights_record_every_part_with_its_recipe():
    record = json.loads((ROOT / "src" / "st_search_r3" / "weights" / "training_record.json").read_text())
    stages = [*record["previous_stages"], record]
    assert [stage["recipe"]["config"] for stage in stages] == [f"train/configs/{part}.yaml" for part in PARTS]
    for stage, (folder, _) in zip(stages, PARTS.values()):
        run = json.loads((ROOT / "benchmarks" / "results" / "sft_runs" / folder / "training_record.json").read_text())
        assert stage["recipe"] == run["recipe"]


def test_no_recipe_starts_from_the_shipped_weights():
    for path in (ROOT / "train" / "configs").glob("*.yaml"):
        config = yaml.safe_load(path.read_text())
        for key in ("init_adapter", "model"):
            assert "st_search_r3/weights" not in str(config.get(key)) and config.get(key) != "search-r3", path.name


@pytest.mark.parametrize("weights", [None, [0.02, 1.0, 2.5]])
def test_draw_rows_is_the_shuffled_weighted_mix_datasets_draws(weights):
    """The shipped runs mixed with datasets' concatenate + shuffle(seed): draw_rows must give those rows."""
    sizes = {"a": 500, "b": 80, "c": 13}
    parts = []
    for (source, size), weight in zip(sizes.items(), weights or [1.0] * 3):
        whole, share = divmod(weight, 1.0)
        extra = np.random.default_rng(7).permutation(size)[: round(share * size)]
        picked = [*range(size)] * int(whole) + sorted(extra.tolist())
        parts.append(Dataset.from_dict({"source": [source] * len(picked), "row": picked}))
    mixed = concatenate_datasets(parts).shuffle(seed=7).select(range(100))
    assert draw_rows(sizes, weights, 100, seed=7) == list(zip(mixed["source"], mixed["row"]))


def test_training_refuses_splits_other_than_the_recipe_pins(tiny_data):
    built = check_data(tiny_data, ["wordnet"], None)
    assert check_data(tiny_data, ["wordnet"], built["data_sha256"]) == built
    with pytest.raises(ValueError, match="python -m st_search_r3.data.build --sources wordnet"):
        check_data(tiny_data, ["wordnet"], "0" * 64)


def test_other_mined_triplets_are_reported_not_refused(tiny_data, caplog):
    """Mining ranks negatives with float kernels that differ between CPUs: the same splits mine other triplets."""
    built = check_data(tiny_data, ["wordnet"], None)
    splits, mined = built["data_sha256"], built["triplets_sha256"]
    with caplog.at_level("WARNING", logger="st_search_r3.training.recipe"):
        assert check_data(tiny_data, ["wordnet"], splits, expected_triplets=mined) == built
        assert not caplog.records
        assert check_data(tiny_data, ["wordnet"], splits, expected_triplets="0" * 64) == built
    assert "mined training triplets differ" in caplog.text and built["triplets_sha256"] in caplog.text


def test_a_changed_split_is_refused_however_the_triplets_hash(tiny_data):
    built = check_data(tiny_data, ["wordnet"], None)
    manifest = tiny_data / "wordnet" / "manifest.json"
    files = json.loads(manifest.read_text())
    files["files"]["train/qrels.jsonl"] = "another qrels file"
    manifest.write_text(json.dumps(files))
    with pytest.raises(ValueError, match="training splits are not those"):
        check_data(tiny_data, ["wordnet"], built["data_sha256"], expected_triplets=built["triplets_sha256"])
