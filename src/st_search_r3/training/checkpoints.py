"""Where a run resumes from, and how it ends: the model and its training record, written atomically."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import gather_object

from st_search_r3.atomic import staged_folder
from st_search_r3.training.callbacks import RunSegments


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest ``checkpoint-N`` that was fully written: the trainer writes ``trainer_state.json`` last,
    so a checkpoint cut short by a crash is skipped instead of breaking the resume. (transformers'
    ``get_last_checkpoint`` returns the newest folder, complete or not: tests/test_sft.py.)"""
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


def train_and_save(
    trainer, model, config, args, checkpoint: str | None, record: dict, unit: str, after_training=None
) -> dict:
    """Trains (from ``checkpoint`` if given), then saves ``model`` to ``<output_dir>/final`` with its training
    record: ``record`` (arguments, data hashes) plus the config, steps, every segment of a run that was
    stopped and resumed (:class:`~st_search_r3.training.callbacks.RunSegments`), wall and CPU time,
    throughput (``<unit>_per_second``, e.g. pairs or completions), a digest of the trained weights per process
    and the log; ``after_training()``, called on every process, may add fields. Only the main process writes;
    every process returns once it has, with its process group (if any) torn down: this ends a training script.

    Returns:
        The record as written to ``final/training_record.json``.
    """
    segments = RunSegments(checkpoint)
    trainer.add_callback(segments)
    trainer.train(resume_from_checkpoint=checkpoint)
    run_segments = segments.segments(trainer.state.global_step)
    this_run = run_segments[-1]
    per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size  # all processes
    timed = [segment for segment in run_segments if segment["seconds"] is not None]
    seconds = sum(segment["seconds"] for segment in timed)
    timed_steps = sum(segment["to_step"] - segment["from_step"] for segment in timed)
    previous = previous_stages(getattr(config, "init_adapter", None))
    record = {
        "config": vars(config),
        **record,
        "previous_stages": previous,
        "segments": run_segments,
        "total_train_seconds": seconds + sum(stage["train_seconds_this_run"] for stage in previous),
        "steps": trainer.state.global_step,
        "resumed_from": checkpoint,
        f"{unit}_this_run": (this_run["to_step"] - this_run["from_step"]) * per_step,
        # This run's segments together (its every start, if all were timed); earlier stages are in previous_stages.
        "train_seconds_this_run": seconds,
        "cpu_seconds_this_run": sum(segment["cpu_seconds"] for segment in timed),  # all threads: ~2x wall on 2 cores
        "seconds_per_step": seconds / max(1, timed_steps),
        f"{unit}_per_second": timed_steps * per_step / max(seconds, 1e-9),
        # One digest of the trained weights per process: data-parallel ranks must hold the same weights.
        "weights_sha256_per_rank": gather_object([trained_weights_digest(model)]),
        "peak_memory_per_rank": gather_object([peak_memory(args.device)]),
        **(after_training() if after_training else {}),
        "log_history": trainer.state.log_history,
    }
    if trainer.is_world_process_zero():
        extra = {"training_record.json": json.dumps(record, indent=2, default=str)}
        save_atomically(model, f"{args.output_dir}/final", extra)
    trainer.accelerator.wait_for_everyone()  # every process returns once final/ is complete
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # A process that exits with its gloo group alive can abort in the group's threads (SIGABRT at exit).
        torch.distributed.destroy_process_group()
    return record


def digest(array: np.ndarray) -> str:
    """A short hash of an array's bytes, to compare what ranks hold."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def peak_memory(device: torch.device) -> dict:
    """The most memory this process has held: on a GPU, what PyTorch allocated on it (``max_memory_allocated``);
    on a CPU, the process's peak resident set (weights, activations, optimizer, the Python runtime; Linux
    ``ru_maxrss``)."""
    if device.type == "cuda":
        return {"device": torch.cuda.get_device_name(device), "gib": torch.cuda.max_memory_allocated(device) / 2**30}
    import resource

    return {"device": "cpu", "gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def trained_weights_digest(model) -> str:
    """A hash of every trainable parameter of ``model``, in order."""
    tensors = [p.detach().float().cpu().numpy() for p in model.parameters() if p.requires_grad]
    return digest(np.concatenate([t.ravel() for t in tensors])) if tensors else ""
