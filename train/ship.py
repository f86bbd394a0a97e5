"""Copies a trained adapter into the package, so that `st-search-r3 install` merges it into `search-r3`.

python train/ship.py runs/sft/final [--scores benchmarks/results/quality_test.md]
python train/ship.py runs/rl/final --stacked-on src/st_search_r3/weights [--scores ...]

Ships the LoRA adapter (with the embed-token row), its tokenizer and settings, the training record and
curves, and optionally a scores table for the model card, into ``src/st_search_r3/weights/``; the
adapter's tensors are stored in bfloat16 to keep the package small. Written to a staging folder and
renamed into place.

A stage-2 adapter (``train/rl.py``) was trained on the installed stage-1 model, so it is shipped stacked
on the stage-1 adapter it was installed from (``--stacked-on``): one adapter of both ranks that gives the
same weights as merging the two in turn (``st_search_r3.lora_stack``). The stage-1 record and curves stay;
the stage-2 ones are added as ``rl_training_record.json`` and ``rl_curves.png``.
"""

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from st_search_r3.atomic import staged_folder
from st_search_r3.install import SHIPPED_WEIGHTS, revision
from st_search_r3.lora_stack import stack_lora_adapters

COPIED = [  # besides the adapter
    "search_r3_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "training_record.json",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a train/sft.py or train/rl.py output folder (its final/)")
    parser.add_argument("--scores", type=Path, help="a markdown scores table for the model card")
    parser.add_argument("--stacked-on", type=Path, help="the stage-1 weights a train/rl.py run was installed from")
    parser.add_argument("--output", type=Path, default=SHIPPED_WEIGHTS, help="where to (default: the package's)")
    args = parser.parse_args()

    with staged_folder(args.output) as staging:
        if args.stacked_on:
            ship_stacked(args.run, args.stacked_on, staging)
        else:
            ship(args.run, staging)
        if args.scores:
            shutil.copy(args.scores, staging / "scores.md")
    for path in sorted(args.output.iterdir()):
        print(f"{path.stat().st_size / 1e6:8.2f} MB  {path}")


def ship(run: Path, staging: Path) -> None:
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


if __name__ == "__main__":
    main()
