"""When to think: fit the <|embed_token|> output row of a trained model, everything else frozen.

python train/stop.py [--config train/configs/stop.yaml] [--any_field value ...]

Writes a model folder (the adapter, the stop head, reasoning "auto") that install() and SentenceTransformer load.
"""

import logging
from pathlib import Path

from st_search_r3.training.config import SearchR3StopConfig, parse_config
from st_search_r3.training.stop_training import train_stop_head

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "stop.yaml"


def main() -> None:
    config = parse_config((SearchR3StopConfig,), DEFAULT_CONFIG, __doc__)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    train_stop_head(config)


if __name__ == "__main__":
    main()
