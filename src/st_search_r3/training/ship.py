"""Copies a trained adapter into the package, so that `st-search-r3 install` merges it into `search-r3`.

st-search-r3 ship runs/sft/final [--scores benchmarks/results/quality_test.md]
st-search-r3 ship runs/rl/final --stacked-on src/st_search_r3/weights [--scores ...]

Ships the LoRA adapter (with the embed-token row), its tokenizer and settings, the training record and
curves, and optionally a scores table for the model card, into ``src/st_search_r3/weights/``; the
adapter's tensors are stored in bfloat16 to keep the package small. Written to a staging folder and
renamed into place.

A stage-2 adapter (``train/rl.py``) was trained on the installed stage-1 model, so it is shipped stacked
on the stage-1 adapter it was installed from (``--stacked-on``): one adapter of both ranks that gives the
same weights as merging the two in turn (``st_search_r3.training.lora_stack``). The stage-1 record and curves stay;
the stage-2 ones are added as ``rl_training_record.json`` and ``rl_curves.png``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from st_search_r3.atomic import staged_folder
from st_search_r3.install import revision
from st_search_r3.model_card import SHIPPED_WEIGHTS
from st_search_r3.training.lora_stack import stack_lora_adapters

COPIED = [  # besides the adapter
    "search_r3_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "training_record.json",
]


def ship(run: Path, scores: Path | None = None, stacked_on: Path | None = None, output: Path = SHIPPED_WEIGHTS) -> None:
    """Writes the adapter of ``run`` (stacked on ``stacked_on`` if given) and ``scores`` into ``output``,
    atomically, and prints what is there."""
    with staged_folder(output) as staging:
        if stacked_on:
            ship_stacked(run, stacked_on, staging)
        else:
            ship_plain(run, staging)
        if scores:
            shutil.copy(scores, staging / "scores.md")
    for path in sorted(output.iterdir()):
        print(f"{path.stat().st_size / 1e6:8.2f} MB  {path}")


def ship_plain(run: Path, staging: Path) -> None:
    config = json.loads((run / "adapter_config.json").read_text())
    write_adapter(staging, load_file(run / "adapter_model.safetensors"), config, run)
    copy_if_present({run.parent / "curves.png": "curves.png"}, staging)


def ship_stacked(run: Path, stage1: Path, staging: Path) -> None:
    stage1_config = json.loads((stage1 / "adapter_config.json").read_text())
    run_config = json.loads((run / "adapter_config.json").read_text())
    # The RL run's base is the snapshot install built from the stage-1 weights; its name is their revision.
    expected = revision(stage1_config["base_model_name_or_path"], stage1)
    if Path(run_config["base_model_name_or_path"]).name != expected:
        raise SystemExit(
            f"{run} was trained on {run_config['base_model_name_or_path']}, not on the model installed from "
            f"{stage1} (snapshot {expected})"
        )
    tensors, config = stack_lora_adapters(
        load_file(stage1 / "adapter_model.safetensors"),
        stage1_config,
        load_file(run / "adapter_model.safetensors"),
        run_config,
    )
    write_adapter(staging, tensors, config, stage1)
    copy_if_present({stage1 / "curves.png": "curves.png", run.parent / "curves.png": "rl_curves.png"}, staging)
    shutil.copy(run / "training_record.json", staging / "rl_training_record.json")


def write_adapter(staging: Path, tensors: dict, config: dict, files_from: Path) -> None:
    """The adapter in bfloat16, its config, and the ``COPIED`` files of ``files_from``."""
    save_file({k: v.to(torch.bfloat16) for k, v in tensors.items()}, staging / "adapter_model.safetensors")
    (staging / "adapter_config.json").write_text(json.dumps(config, indent=2))
    copy_if_present({files_from / name: name for name in COPIED}, staging)


def copy_if_present(sources: dict[Path, str], staging: Path) -> None:
    for source, name in sources.items():
        if source.is_file():
            shutil.copy(source, staging / name)
