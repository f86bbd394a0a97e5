from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from huggingface_hub import constants
from sentence_transformers import SentenceTransformer

from st_search_r3 import install as install_module
from st_search_r3.install import install, installed_path


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_install_makes_search_r3_loadable_by_name_from_anywhere(tiny_llm, hub_cache, tmp_path, monkeypatch):
    folder = install(tiny_llm)
    assert folder == installed_path(tiny_llm) and (folder / "modules.json").is_file()
    assert "st_search_r3.module.SearchR3" in (folder / "modules.json").read_text()
    assert not list(folder.glob("*.py")), "no code is copied into the model folder"
    assert "Training: none yet" in (folder / "README.md").read_text()

    monkeypatch.chdir(tmp_path)
    model = SentenceTransformer("search-r3", trust_remote_code=True)
    embedding = model.encode_document(["a wild cat"])
    assert embedding.shape == (1, 64) and np.isfinite(embedding).all()


def test_install_is_idempotent_and_fast_the_second_time(tiny_llm, hub_cache):
    first = install(tiny_llm)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    start = time.perf_counter()
    assert install(tiny_llm) == first
    assert time.perf_counter() - start < 1.0
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp


def test_interrupted_install_leaves_nothing_half_written(tiny_llm, hub_cache, monkeypatch):
    def crash(base_model, weights, output_dir):
        (output_dir / "model.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(install_module, "_build", crash)
    with pytest.raises(KeyboardInterrupt):
        install(tiny_llm)
    snapshots = installed_path(tiny_llm).parent
    assert list(snapshots.iterdir()) == []


def test_install_cleans_up_after_a_killed_run(tiny_llm, hub_cache):
    leftover = installed_path(tiny_llm).parent / ".tmp-killed"
    leftover.mkdir(parents=True)
    (leftover / "model.safetensors").write_bytes(b"partial")
    install(tiny_llm)
    assert not leftover.exists()


def test_cli_path_prints_the_snapshot_folder(tiny_llm):
    output = subprocess.run(
        [sys.executable, "-m", "st_search_r3.cli", "path", "--base-model", tiny_llm],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert output.endswith(installed_path(tiny_llm).name)
