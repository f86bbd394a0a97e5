"""Stage 1: teach <|embed_token|> to carry a good embedding (LoRA + embed-token row).

python train/sft.py [--config train/configs/sft_all.yaml] [--any_field value ...] [--resume true]
"""

import logging
from pathlib import Path

from accelerate import PartialState
from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

from st_search_r3.training.callbacks import CheckpointEveryMinutes, CurvesCallback
from st_search_r3.training.checkpoints import resume_checkpoint, train_and_save
from st_search_r3.training.config import SearchR3SFTConfig, parse_config
from st_search_r3.training.evaluation import dev_evaluator
from st_search_r3.training.losses import SearchR3Loss
from st_search_r3.training.recipe import check_data
from st_search_r3.training.sft_data import ROUTES, build_model, load_training_set

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "sft_all.yaml"


def main() -> None:
    config, args = parse_config((SearchR3SFTConfig, SentenceTransformerTrainingArguments), DEFAULT_CONFIG, __doc__)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    data_hashes = check_data(
        config.root(), config.sources, config.data_sha256, config.train_data, config.triplets_sha256
    )
    model = build_model(config)
    with PartialState().main_process_first():  # reasoning targets are generated once, by the main process
        train_dataset, draw = load_training_set(config, model, seed=args.seed)
    loss = SearchR3Loss(
        model,
        temperature=config.temperature,
        triplet_margin=config.triplet_margin,
        infonce_weight=config.infonce_weight,
        triplet_weight=config.triplet_weight,
        lm_weight=config.lm_weight,
        kl_weight=config.kl_weight,
        format_weight=config.format_weight,
        distill_weight=config.distill_weight,
        teacher_temperature=config.teacher_temperature,
        gather_across_devices=config.gather_across_devices,
    )
    args.router_mapping = {name: ROUTES[name] for name in train_dataset}
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        loss=loss,
        evaluator=dev_evaluator(config, config.eval_queries),
        callbacks=[
            CheckpointEveryMinutes(config.checkpoint_minutes),
            CurvesCallback(args.output_dir),
        ],
    )
    record = {"training_arguments": args.to_dict(), **data_hashes, "draw": draw}
    train_and_save(trainer, model, config, args, resume_checkpoint(config, args), record, unit="pairs")


if __name__ == "__main__":
    main()
