"""Where a run resumes from, and how it ends: the model and its training record, written atomically."""

from __future__ import annotations

import json
import time
from pathlib import Path

from st_search_r3.atomic import staged_folder


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest ``checkpoint-N`` that was fully written: the trainer writes ``trainer_state.json`` last,
    so a checkpoint cut short by a crash is skipped instead of breaking the resume."""
    checkpoints = sorted(Path(output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]), reverse=True)
    return next((str(c) for c in checkpoints if (c / "trainer_state.json").is_file()), None)


def resume_checkpoint(config, args) -> str | None:
    """The checkpoint a run continues from: ``--resume_from_checkpoint PATH`` if given (it must be complete),
    else the last complete one in ``output_dir`` when ``--resume true``, else none."""
    if args.resume_from_checkpoint:
        path = Path(args.resume_from_checkpoint)
        if not (path / "trainer_state.json").is_file():
            raise FileNotFoundError(f"--resume_from_checkpoint {path}: no complete checkpoint there")
        return str(path)
    return last_complete_checkpoint(args.output_dir) if config.resume else None


def save_atomically(model, folder: str | Path, extra_files: dict[str, str] | None = None) -> None:
    """Saves the model (and ``extra_files``: name to text) into a staging folder, then renames it into
    place: ``folder`` is either complete or absent."""
    with staged_folder(folder) as staging:
        model.save(str(staging))
        for name, text in (extra_files or {}).items():
            (staging / name).write_text(text)


def previous_stages(adapter: str | None) -> list[dict]:
    """The training records (without their logs) of the runs that trained ``adapter`` before, oldest first."""
    path = Path(adapter) / "training_record.json" if adapter else None
    if path is None or not path.is_file():
        return []
    record = json.loads(path.read_text())
    earlier = record.pop("previous_stages", [])
    record.pop("log_history", None)
    return [*earlier, record]


def train_and_save(trainer, model, config, args, checkpoint: str | None, record: dict, unit: str) -> dict:
    """Trains (from ``checkpoint`` if given), then saves ``model`` to ``<output_dir>/final`` with its training
    record: ``record`` (arguments, data hashes) plus the config, steps, wall and CPU time, throughput
    (``<unit>_per_second``, e.g. pairs or completions) and the log.

    Returns:
        The record as written to ``final/training_record.json``.
    """
    first_step = int(checkpoint.rsplit("-", 1)[1]) if checkpoint else 0
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer.train(resume_from_checkpoint=checkpoint)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    steps = trainer.state.global_step - first_step
    count = steps * args.per_device_train_batch_size * args.gradient_accumulation_steps
    previous = previous_stages(getattr(config, "init_adapter", None))
    record = {
        "config": vars(config),
        **record,
        "previous_stages": previous,
        "total_train_seconds": seconds + sum(stage["train_seconds_this_run"] for stage in previous),
        "steps": trainer.state.global_step,
        "resumed_from": checkpoint,
        f"{unit}_this_run": count,
        "train_seconds_this_run": seconds,
        "cpu_seconds_this_run": cpu_seconds,  # all threads of the process: ~2x the wall time on 2 busy cores
        "seconds_per_step": seconds / max(1, steps),
        f"{unit}_per_second": count / seconds,
        "log_history": trainer.state.log_history,
    }
    extra = {"training_record.json": json.dumps(record, indent=2, default=str)}
    save_atomically(model, f"{args.output_dir}/final", extra)
    return record
