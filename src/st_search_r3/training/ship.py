"""Copies a trained adapter into the package, so that `st-search-r3 install` merges it into `search-r3`.

st-search-r3 ship runs/sft/final [--scores benchmarks/results/quality_test.md]
st-search-r3 ship runs/rl/final --stacked-on src/st_search_r3/weights [--scores ...]
st-search-r3 ship --stop-head runs/stop_head/final     # adds a stop head fitted on the shipped adapter

Ships the LoRA adapter (with the embed-token row), its tokenizer and settings, the training record and
curves, and optionally a scores table for the model card, into ``src/st_search_r3/weights/``; the
adapter's tensors are stored in bfloat16 to keep the package small. Written to a staging folder and
renamed into place.

A stage-2 adapter (``train/rl.py``) was trained on the installed stage-1 model, so it is shipped stacked
on the stage-1 adapter it was installed from (``--stacked-on``): one adapter of both ranks that gives the
same weights as merging the two in turn (``st_search_r3.training.lora_stack``). The stage-1 record and curves stay;
the stage-2 ones are added as ``rl_training_record.json`` and ``rl_curves.png``.

A stop head (``train/stop.py``) is shipped beside the adapter it was fitted on (``--stop-head``, alone or with a
run): ``stop_head.safetensors`` and its ``stop_record.json``, so that ``reasoning="auto"`` chooses with it. The
shipped default (``reasoning`` in the settings) is left as it is. Shipping a new adapter drops the old head.
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
from st_search_r3.stop_head import STOP_HEAD_FILE
from st_search_r3.training.lora_stack import stack_lora_adapters

COPIED = [  # besides the adapter
    "search_r3_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "training_record.json",
]


def ship(
    run: Path | None,
    scores: Path | None = None,
    stacked_on: Path | None = None,
    output: Path = SHIPPED_WEIGHTS,
    stop_head: Path | None = None,
) -> None:
    """Writes the adapter of ``run`` (stacked on ``stacked_on`` if given; without ``run`` the shipped one stays),
    the stop head of ``stop_head`` and ``scores`` into ``output``, atomically, and prints what is there."""
    if run is None and stop_head is None:
        raise SystemExit("Nothing to ship: give a run, --stop-head, or both")
    with staged_folder(output) as staging:
        if run is None:
            shutil.copytree(output, staging, dirs_exist_ok=True)
        elif stacked_on:
            ship_stacked(run, stacked_on, staging)
        else:
            ship_plain(run, staging)
        if stop_head:
            ship_stop_head(stop_head, staging)
        if scores:
            shutil.copy(scores, staging / "scores.md")
    for path in sorted(output.iterdir()):
        print(f"{path.stat().st_size / 1e6:8.2f} MB  {path}")


def ship_stop_head(stop_run: Path, staging: Path) -> None:
    """The head of a ``train/stop.py`` output, which must have been fitted on the adapter being shipped."""
    if not (stop_run / STOP_HEAD_FILE).is_file():
        raise SystemExit(f"{stop_run} holds no {STOP_HEAD_FILE}: give train/stop.py's final/ folder")
    fitted_on = load_file(stop_run / "adapter_model.safetensors")
    shipped = load_file(staging / "adapter_model.safetensors")
    same = fitted_on.keys() == shipped.keys() and all(torch.equal(fitted_on[k], shipped[k]) for k in shipped)
    if not same:
        raise SystemExit(f"The stop head of {stop_run} was fitted on another adapter than the one being shipped")
    for name in (STOP_HEAD_FILE, "stop_record.json"):
        shutil.copy(stop_run / name, staging / name)


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
