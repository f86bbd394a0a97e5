"""Copies a trained adapter into the package, so that `st-search-r3 install` merges it into `search-r3`.

python train/ship.py runs/sft/final [--scores benchmarks/results/quality_test.md]

Ships the LoRA adapter (with the embed-token row), its tokenizer and settings, the training record and
curves, and optionally a scores table for the model card, into ``src/st_search_r3/weights/``; the
adapter's tensors are stored in bfloat16 to keep the package small. Written to a staging folder and
renamed into place.
"""

import argparse
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from st_search_r3.atomic import staged_folder
from st_search_r3.install import SHIPPED_WEIGHTS

COPIED = [
    "adapter_config.json",
    "search_r3_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "training_record.json",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a train/sft.py output folder (its final/)")
    parser.add_argument("--scores", type=Path, help="a markdown scores table for the model card")
    args = parser.parse_args()

    with staged_folder(SHIPPED_WEIGHTS) as staging:
        tensors = load_file(args.run / "adapter_model.safetensors")
        save_file(
            {name: tensor.to(torch.bfloat16) for name, tensor in tensors.items()}, staging / "adapter_model.safetensors"
        )
        for name in COPIED:
            if (args.run / name).is_file():
                shutil.copy(args.run / name, staging / name)
        curves = args.run.parent / "curves.png"
        if curves.is_file():
            shutil.copy(curves, staging / "curves.png")
        if args.scores:
            shutil.copy(args.scores, staging / "scores.md")
    for path in sorted(SHIPPED_WEIGHTS.iterdir()):
        print(f"{path.stat().st_size / 1e6:8.2f} MB  {path}")


if __name__ == "__main__":
    main()
