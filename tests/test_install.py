from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
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


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "st_search_r3.cli", *args], capture_output=True, text=True, env=env)


def test_cli_path_prints_the_snapshot_folder_once_installed(tiny_llm, tmp_path):
    import os

    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub")}
    missing = cli("path", "--base-model", tiny_llm, env=env)
    assert missing.returncode == 1 and "st-search-r3 install" in missing.stderr and missing.stdout == ""
    assert cli("install", "--base-model", tiny_llm, env=env).returncode == 0
    found = cli("path", "--base-model", tiny_llm, env=env)
    assert found.returncode == 0 and (Path(found.stdout.strip()) / "modules.json").is_file()


def test_cli_help_and_version_say_what_it_is():
    from st_search_r3 import __version__

    assert cli("--version").stdout.strip() == f"st-search-r3 {__version__}"
    help_text = cli("--help").stdout
    assert "reasons, then embeds" in help_text and "install" in help_text and "demo" in help_text


def test_two_installs_at_once_both_succeed_and_leave_one_complete_snapshot(tiny_llm, tmp_path):
    import os

    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub")}
    script = f"from st_search_r3.install import install; print(install({tiny_llm!r}, force=True))"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    assert all(process.returncode == 0 for process in processes), [err[-2000:] for _, err in outputs]
    folders = {out.strip().splitlines()[-1] for out, _ in outputs}
    assert len(folders) == 1
    snapshots = tmp_path / "hub" / "models--sentence-transformers--search-r3" / "snapshots"
    assert [p.name for p in snapshots.iterdir()] == [Path(folders.pop()).name]
    model = SentenceTransformer(str(next(snapshots.iterdir())), trust_remote_code=True)
    assert np.isfinite(model.encode_document(["a wild cat"])).all()


def test_a_training_runs_adapter_resolves_to_its_own_snapshot_and_keeps_the_default(tiny_llm, hub_cache, tmp_path):
    from peft import LoraConfig, get_peft_model

    from st_search_r3 import SearchR3
    from st_search_r3.resolving import resolve_model

    default = install(tiny_llm)
    module = SearchR3(tiny_llm, max_seq_length=256, max_reasoning_tokens=8)
    module.auto_model = get_peft_model(module.auto_model, LoraConfig(r=2, target_modules="all-linear"))
    module.auto_model.peft_config["default"].base_model_name_or_path = tiny_llm
    SentenceTransformer(modules=[module]).save(str(tmp_path / "run-final"))
    folder = Path(resolve_model(str(tmp_path / "run-final")))
    assert folder != default and (folder / "modules.json").is_file() and not (folder / "adapter_config.json").exists()
    assert (hub_cache / "models--sentence-transformers--search-r3" / "refs" / "main").read_text() == default.name


def test_merged_snapshots_of_runs_are_reused_and_bounded(tiny_llm, hub_cache, tmp_path):
    from peft import LoraConfig, get_peft_model

    from st_search_r3 import SearchR3
    from st_search_r3.resolving import prune_merged_snapshots, resolve_model

    default = install(tiny_llm)
    runs = []
    for seed in range(2):
        torch.manual_seed(seed)
        module = SearchR3(tiny_llm, max_seq_length=256, max_reasoning_tokens=8)
        module.auto_model = get_peft_model(module.auto_model, LoraConfig(r=2, target_modules="all-linear"))
        module.auto_model.peft_config["default"].base_model_name_or_path = tiny_llm
        for name, parameter in module.auto_model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(parameter)  # two different adapters
        SentenceTransformer(modules=[module]).save(str(tmp_path / f"run-{seed}"))
        runs.append(tmp_path / f"run-{seed}")
    first, second = (Path(resolve_model(str(run))) for run in runs)
    assert first != second and Path(resolve_model(str(runs[0]))) == first, "the same adapter reuses its snapshot"
    os.utime(second, (0, 0))  # resolved longest ago
    assert prune_merged_snapshots(keep=1) == [second]
    assert first.is_dir() and default.is_dir() and not second.exists(), "the default is never pruned"
    assert Path(resolve_model(str(runs[1]))) == second and (second / "modules.json").is_file(), "rebuilt on demand"
