"""Trainer callbacks both stages use: checkpoints by the clock, curves, dev evaluation."""

from __future__ import annotations

import json
import logging
import statistics
import time
from pathlib import Path

from accelerate.utils import broadcast_object_list
from transformers import TrainerCallback

logger = logging.getLogger(__name__)


class CheckpointEveryMinutes(TrainerCallback):
    """Asks the trainer to save whenever ``minutes`` have passed since the last save (by the main process's
    clock, so that every rank saves at the same step)."""

    def __init__(self, minutes: float) -> None:
        self.seconds = 60 * minutes
        self.last = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if broadcast_object_list([time.monotonic() - self.last >= self.seconds])[0]:
            control.should_save = True
        return control

    def on_save(self, args, state, control, **kwargs):
        self.last = time.monotonic()
        return control


class RunSegments(TrainerCallback):
    """The segments of a run stopped and resumed, each as it was when its last checkpoint was written:
    ``from_step``, ``to_step``, wall and CPU seconds, start time. Every checkpoint keeps the list so far in
    ``run_segments.json``, so a resumed run takes the earlier segments from its checkpoint and its final
    record names them all. Work a stopped segment did after its last checkpoint is redone by the next one
    and counted there, not twice.

    Args:
        checkpoint: The checkpoint this segment resumes from (``None``: a new run).
    """

    file_name = "run_segments.json"

    def __init__(self, checkpoint: str | None) -> None:
        self.first_step = int(checkpoint.rsplit("-", 1)[1]) if checkpoint else 0
        saved = Path(checkpoint) / self.file_name if checkpoint else None
        self.earlier = json.loads(saved.read_text()) if saved and saved.is_file() else []
        if checkpoint and not self.earlier:  # a checkpoint written before segments were kept
            self.earlier = [{"from_step": 0, "to_step": self.first_step, "seconds": None}]
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.start, self.cpu_start = time.perf_counter(), time.process_time()

    def segments(self, step: int) -> list[dict]:
        current = {
            "from_step": self.first_step,
            "to_step": step,
            "seconds": time.perf_counter() - self.start,
            "cpu_seconds": time.process_time() - self.cpu_start,
            "started": self.started,
        }
        return [*self.earlier, current]

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            (folder / self.file_name).write_text(json.dumps(self.segments(state.global_step), indent=2))
        return control


class CurvesCallback(TrainerCallback):
    """Writes every logged value to ``curves.jsonl`` and redraws ``curves.png``, one panel per entry of
    ``panels`` (title -> the ending of the logged keys it plots; default: loss and dev nDCG@10).

    The rows are kept in memory; the picture is redrawn at most every ``redraw_seconds`` and at the end.
    On resume, rows logged after the checkpoint's step are dropped, since the run logs them again.
    """

    def __init__(self, output_dir: str, panels: dict[str, str] | None = None, redraw_seconds: float = 60.0) -> None:
        self.folder = Path(output_dir)
        self.panels = panels or {"training loss": "loss", "dev nDCG@10": "ndcg@10"}
        self.redraw_seconds = redraw_seconds
        self.rows: list[dict] = []
        self.last_drawn = float("-inf")

    @property
    def log_path(self) -> Path:
        return self.folder / "curves.jsonl"

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.log_path.is_file():
            with open(self.log_path) as handle:
                rows = [json.loads(line) for line in handle if line.strip()]
            self.rows = [row for row in rows if row["step"] <= state.global_step]
            if len(self.rows) < len(rows):
                self.log_path.write_text("".join(json.dumps(row) + "\n" for row in self.rows))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero:
            return
        row = {"step": state.global_step, **(logs or {})}
        self.rows.append(row)
        with open(self.log_path, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        if time.monotonic() - self.last_drawn >= self.redraw_seconds:
            self.draw()

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.draw()

    def draw(self) -> None:
        plot_curves(self.rows, self.folder / "curves.png", self.panels)
        self.last_drawn = time.monotonic()


def plot_curves(rows: list[dict], png_path: Path, panels: dict[str, str]) -> None:
    """One panel per ``title -> key ending``; per-step series of 30 points or more get a running mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for axis, (title, ending) in zip(axes[0], panels.items()):
        points = [(r["step"], v) for r in rows for k, v in r.items() if k == ending or k.endswith("_" + ending)]
        if len(points) >= 30:  # per-step values of a few queries are noisy: draw a running mean over them
            steps, values = zip(*points)
            axis.plot(steps, values, alpha=0.35, label="per step")
            window = max(5, len(points) // 10)
            mean = [statistics.fmean(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))]
            axis.plot(steps, mean, label=f"mean of the last {window}")
            axis.legend(fontsize=8)
        elif points:
            axis.plot(*zip(*points), marker="o")
        axis.set(title=title, xlabel="step")
    figure.tight_layout()
    figure.savefig(png_path, dpi=110)
    plt.close(figure)


class DevEvaluationCallback(TrainerCallback):
    """Runs a dev evaluator at the start, every ``every`` steps and at the end, on the main process, and logs its
    nDCG@10 as ``dev_ndcg@10`` through the trainer; the model's train/eval mode is restored after each evaluation.

    Args:
        evaluator: A :class:`~st_search_r3.training.evaluation.DevRetrievalEvaluator`.
        model: The SentenceTransformer being trained.
        every: Steps between evaluations (0: start and end only).
    """

    def __init__(self, evaluator, model, every: int) -> None:
        self.evaluator = evaluator
        self.model = model
        self.every = every
        self.trainer = None  # set by the script once the trainer exists: results are logged through it

    def evaluate(self, state) -> None:
        if not state.is_world_process_zero:
            return
        was_training = self.model.training
        scores = self.evaluator(self.model)
        self.model.train(was_training)
        ndcg = next(v for k, v in scores.items() if k.endswith("ndcg@10"))
        logger.info("step %d: dev nDCG@10 = %.4f", state.global_step, ndcg)
        self.trainer.log({"dev_ndcg@10": ndcg})

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0:
            self.evaluate(state)

    def on_step_end(self, args, state, control, **kwargs):
        if self.every and state.global_step % self.every == 0 and state.global_step < state.max_steps:
            self.evaluate(state)

    def on_train_end(self, args, state, control, **kwargs):
        self.evaluate(state)
