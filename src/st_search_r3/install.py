"""Assembling the default ``search-r3`` model where ``SentenceTransformer("search-r3")`` finds it.

sentence-transformers resolves a bare name that is not a local folder to the hub id
``sentence-transformers/search-r3``; with the hub off, or when the hub has no such repository, it serves
that id from the Hugging Face cache. So the model is written as a snapshot of that id in the cache:
``$HF_HUB_CACHE/models--sentence-transformers--search-r3/snapshots/<revision>/`` plus ``refs/main``.
The snapshot's ``modules.json`` names ``st_search_r3.module.SearchR3``, so loading runs the installed
package's code; no code is copied into the model folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from st_search_r3 import __version__
from st_search_r3.atomic import exclusive_lock, replace_folder, write_file
from st_search_r3.base_model import DEFAULT_BASE_MODEL
from st_search_r3.model_card import SHIPPED_WEIGHTS, model_card
from st_search_r3.settings import side_prompts

logger = logging.getLogger(__name__)

MODEL_NAME = "search-r3"
READER_NAME = f"{MODEL_NAME}-reader"  # the same model in MTEB, searching with reasoning that reads
HYBRID_NAME = f"{MODEL_NAME}-hybrid"  # the same model in MTEB, searching with BM25 beside the cosine
HUB_ID = f"sentence-transformers/{MODEL_NAME}"
DOCUMENTATION_FILES = {"scores.md", "curves.png", "rl_curves.png"}


def repo_dir(cache_folder: str | Path | None = None) -> Path:
    """The model's repository folder in the Hugging Face cache, or in ``cache_folder``'s hub layout."""
    from huggingface_hub import constants

    return Path(cache_folder or constants.HF_HUB_CACHE) / ("models--" + HUB_ID.replace("/", "--"))


def link_into(cache_folder: str | Path, snapshot: Path) -> Path:
    """Makes ``SentenceTransformer("search-r3", cache_folder=cache_folder)`` load ``snapshot``: a link to it (no copy)
    in that folder's hub layout, and ``refs/main``. For clients that bring a cache folder of their own (LlamaIndex).

    Returns:
        The linked snapshot folder.
    """
    repo = repo_dir(cache_folder)
    linked = repo / "snapshots" / snapshot.name
    linked.parent.mkdir(parents=True, exist_ok=True)
    if linked.resolve() != snapshot.resolve():
        staging = linked.with_name(f".{snapshot.name}.link-{os.getpid()}")
        staging.unlink(missing_ok=True)
        staging.symlink_to(snapshot.resolve(), target_is_directory=True)
        os.replace(staging, linked)
    write_file(repo / "refs" / "main", snapshot.name)
    return linked


def shipped_weights(base_model: str = DEFAULT_BASE_MODEL) -> Path | None:
    """The trained adapter shipped inside the package (``st_search_r3/weights``), if it fits ``base_model``."""
    config = SHIPPED_WEIGHTS / "adapter_config.json"
    if config.is_file() and json.loads(config.read_text())["base_model_name_or_path"] == base_model:
        return SHIPPED_WEIGHTS
    return None


def revision(base_model: str = DEFAULT_BASE_MODEL, weights: Path | None = None) -> str:
    """A 40-hex revision that changes whenever the vectors install's model would give change.

    Files that only document the weights (the scores table and curves of the model card) are left out,
    so adding scores measured on a revision does not make a new one.
    """
    # The prompts a snapshot's config carries (side_prompts) are part of it: a change to them is a new snapshot.
    digest = hashlib.sha1(f"st-search-r3 {__version__} base={base_model} prompts={side_prompts()}".encode())
    for path in sorted(Path(weights).glob("*")) if weights else []:
        if path.is_file() and path.name not in DOCUMENTATION_FILES:
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def installed_path(base_model: str = DEFAULT_BASE_MODEL, weights: Path | None = None) -> Path:
    """The snapshot folder of the default model (it may not exist yet)."""
    return repo_dir() / "snapshots" / revision(base_model, weights or shipped_weights(base_model))


def install(
    base_model: str = DEFAULT_BASE_MODEL,
    force: bool = False,
    weights: str | Path | None = None,
    make_default: bool = True,
) -> Path:
    """Builds the default model into the Hugging Face cache, unless it is there already.

    Idempotent and atomic: the model is written to a temporary folder next to the snapshot and renamed
    into place, and ``refs/main`` is replaced in one step, so an interrupted run leaves no half model.

    Args:
        base_model: The causal LM to build on (the packaged SmolLM2 by default).
        force: Rebuild even if the snapshot exists.
        weights: A trained adapter folder (``train/sft.py``'s ``final``), merged into the base. By
            default the adapter shipped in the package, when there is one for ``base_model``.
        make_default: Point ``refs/main`` at the snapshot, so that the name ``search-r3`` loads it.

    Returns:
        The snapshot folder.
    """
    weights = Path(weights) if weights else shipped_weights(base_model)
    if weights is not None:
        base_model = json.loads((weights / "adapter_config.json").read_text())["base_model_name_or_path"]
    snapshot = installed_path(base_model, weights)
    if not force and (snapshot / "modules.json").is_file():
        ref = repo_dir() / "refs" / "main"
        # Every load passes here: no fsync when unchanged.
        if make_default and (not ref.is_file() or ref.read_text() != snapshot.name):
            write_file(ref, snapshot.name)
        return snapshot
    snapshots = snapshot.parent
    snapshots.mkdir(parents=True, exist_ok=True)
    # One builder at a time: a second process waits, then finds the snapshot built. Under the lock a
    # staging folder can only be a killed run's, so it is safe to delete.
    with exclusive_lock(repo_dir() / ".install.lock"):
        for leftover in snapshots.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        if force or not (snapshot / "modules.json").is_file():
            staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=snapshots))
            try:
                _build(base_model, weights, staging)
                replace_folder(staging, snapshot)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        if make_default:
            write_file(repo_dir() / "refs" / "main", snapshot.name)
    return snapshot


def _build(base_model: str, weights: Path | None, output_dir: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from st_search_r3.module import SearchR3

    logger.info("Building %s on %s (trained weights: %s) in %s", MODEL_NAME, base_model, weights, output_dir)
    settings = {}
    if weights is not None and (weights / SearchR3.config_file_name).is_file():
        settings = json.loads((weights / SearchR3.config_file_name).read_text())
        # Every saved setting carries over, max_seq_length included: the shipped truncation is chosen on dev.
        settings = {k: v for k, v in settings.items() if k in SearchR3.config_keys}
    module = SearchR3(str(weights) if weights else base_model, **settings)
    module.merge_adapter()
    model = SentenceTransformer(modules=[module], similarity_fn_name="cosine", prompts=side_prompts())
    model.save(str(output_dir), create_model_card=False)
    for record in ("training_record.json", "rl_training_record.json"):  # the model card points to them
        if weights is not None and (weights / record).is_file():
            shutil.copy(weights / record, output_dir / record)
    (output_dir / "README.md").write_text(model_card(base_model, weights, module), encoding="utf-8")
