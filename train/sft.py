"""Stage 1: teach <|embed_token|> to carry a good embedding (LoRA + embed-token row).

python train/sft.py --config train/configs/sft.yaml [--any_field value ...] [--resume true]
"""

import json
import logging
import time

from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from trl import TrlParser

from st_search_r3.losses import SearchR3Loss
from st_search_r3.sft import (
    ROUTES,
    CheckpointEveryMinutes,
    CurvesCallback,
    SearchR3SFTConfig,
    build_model,
    data_fingerprint,
    dev_evaluator,
    last_complete_checkpoint,
    load_training_set,
    save_atomically,
)


def main() -> None:
    config, args = TrlParser((SearchR3SFTConfig, SentenceTransformerTrainingArguments)).parse_args_and_config()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    model = build_model(config)
    train_dataset = load_training_set(config, model[0].tokenizer, seed=args.seed)
    loss = SearchR3Loss(
        model,
        temperature=config.temperature,
        triplet_margin=config.triplet_margin,
        infonce_weight=config.infonce_weight,
        triplet_weight=config.triplet_weight,
        lm_weight=config.lm_weight,
        kl_weight=config.kl_weight,
        mini_batch_size=config.mini_batch_size,
    )
    args.router_mapping = {name: ROUTES[name] for name in train_dataset}
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        loss=loss,
        evaluator=dev_evaluator(config),
        callbacks=[CheckpointEveryMinutes(config.checkpoint_minutes), CurvesCallback(args.output_dir)],
    )
    checkpoint = last_complete_checkpoint(args.output_dir) if config.resume else None
    first_step = int(checkpoint.rsplit("-", 1)[1]) if checkpoint else 0
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - start
    steps = trainer.state.global_step - first_step
    pairs = steps * args.per_device_train_batch_size * args.gradient_accumulation_steps
    record = {
        "config": vars(config),
        "training_arguments": args.to_dict(),
        "data_sha256": data_fingerprint(config),
        "steps": trainer.state.global_step,
        "pairs_this_run": pairs,
        "train_seconds_this_run": seconds,
        "pairs_per_second": pairs / seconds,
        "log_history": trainer.state.log_history,
    }
    save_atomically(
        model, f"{args.output_dir}/final", {"training_record.json": json.dumps(record, indent=2, default=str)}
    )


if __name__ == "__main__":
    main()
