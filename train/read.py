"""Reasoning that reads: train the reader adapter of a trained model, everything else frozen.

python train/read.py [--config train/configs/read.yaml] [--any_field value ...] [--resume true]

Writes a model folder (the model's files, the reader in reader/, the read settings) that install() and
SentenceTransformer load; its documents and direct query vectors are the model's own.
"""

import logging
from pathlib import Path

from st_search_r3.training.config import SearchR3ReaderConfig, parse_config
from st_search_r3.training.reader_training import train_reader

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "read.yaml"


def main() -> None:
    config = parse_config((SearchR3ReaderConfig,), DEFAULT_CONFIG, __doc__)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    train_reader(config)


if __name__ == "__main__":
    main()
