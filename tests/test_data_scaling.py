"""research/data_scaling.py: the stream of new triplets both models continue on, and its checkpoint points."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from datasets import Dataset

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def data_scaling():
    spec = importlib.util.spec_from_file_location("data_scaling", ROOT / "research" / "data_scaling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def built(root: Path, name: str, count: int) -> list[dict]:
    rows = [{"anchor": f"{name} q{i}", "positive": f"{name} d{i}", "negative": f"{name} n{i}"} for i in range(count)]
    Dataset.from_list(rows).save_to_disk(str(root / name / "train_triplets"))
    return rows


def test_stream_draws_only_unseen_triplets_in_the_mix_counts(tmp_path, data_scaling):
    first, second = built(tmp_path, "first", 20), built(tmp_path, "second", 6)
    seen = {(row["anchor"], row["positive"]) for row in first[:15] + second[:3]}
    stream, counts = data_scaling.build_stream(tmp_path, {"first": 5, "second": 9}, seen, seed=0)
    assert counts == {"unseen": {"first": 5, "second": 3}, "drawn": {"first": 5, "second": 9}}
    assert len(stream) == 14
    assert not {(row["anchor"], row["positive"]) for row in stream} & seen
    assert sorted(row["anchor"] for row in stream if row["anchor"].startswith("second")) == sorted(
        [f"second q{i}" for i in range(3, 6)] * 3
    )
    assert stream == data_scaling.build_stream(tmp_path, {"first": 5, "second": 9}, seen, seed=0)[0]
    assert stream != data_scaling.build_stream(tmp_path, {"first": 5, "second": 9}, seen, seed=1)[0]


def test_stream_refuses_a_set_already_seen_whole(tmp_path, data_scaling):
    rows = built(tmp_path, "first", 4)
    with pytest.raises(ValueError, match="first: every training triplet was already seen"):
        data_scaling.build_stream(tmp_path, {"first": 2}, {(r["anchor"], r["positive"]) for r in rows})


def test_checkpoints_map_steps_to_pairs_seen(tmp_path, data_scaling):
    for step in (100, 37, 200):
        (tmp_path / f"checkpoint-{step}").mkdir()
    assert data_scaling.checkpoints(tmp_path, 16) == {
        592: tmp_path / "checkpoint-37",
        1600: tmp_path / "checkpoint-100",
        3200: tmp_path / "checkpoint-200",
    }


def test_a_segment_starts_where_the_previous_one_ended(tmp_path, data_scaling, monkeypatch):
    import types

    monkeypatch.setattr(data_scaling, "RUN", tmp_path)
    args = types.SimpleNamespace(segment=1, search_r3="shipped", minilm="minilm_finetuned")
    assert (data_scaling.start_model(args, "search_r3"), data_scaling.start_model(args, "minilm")) == (
        "shipped",
        "minilm_finetuned",
    )
    args.segment = 2
    with pytest.raises(FileNotFoundError, match="run segment 1 first"):
        data_scaling.start_model(args, "search_r3")
    (tmp_path / "segment-1" / "search_r3" / "final").mkdir(parents=True)
    assert data_scaling.start_model(args, "search_r3") == str(tmp_path / "segment-1" / "search_r3" / "final")
