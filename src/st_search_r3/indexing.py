"""Embedding a large corpus into an on-disk shard cache that an interrupted run continues.

    vectors = encode_corpus(model, documents, "index/my-corpus")   # stop it any time, call again to go on

The corpus is cut into shards of ``shard_size`` documents; each finished shard is written to
``shard-000042.npy`` under a temporary name and renamed into place (:func:`st_search_r3.atomic.write_file`),
so a shard on disk is always complete. A ``manifest.json`` pins the corpus (a digest of every text), the
shard size and the model's identity: a cache built for other texts or another model is refused instead
of mixed in.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from st_search_r3.atomic import write_file
from st_search_r3.reader import without_reader

MANIFEST = "manifest.json"


def corpus_digest(documents: Sequence[str]) -> str:
    """sha256 over the texts, in order (a changed, added or moved text changes it)."""
    digest = hashlib.sha256()
    for text in documents:
        encoded = text.encode()
        digest.update(len(encoded).to_bytes(8, "little") + encoded)
    return digest.hexdigest()


def model_identity(model) -> str:
    """What ``model``'s document vectors depend on: a sha256 of each module's class, its settings that reach
    documents (``document_config()`` where a module has it, else all) and its weights. A reader's and a stop head's
    weights are left out (documents never pass through them), so a model with or without either shares an index."""
    digest = hashlib.sha256()
    for module in model:
        config = module.document_config() if hasattr(module, "document_config") else module.get_config_dict()
        digest.update(type(module).__qualname__.encode() + json.dumps(config, sort_keys=True, default=str).encode())
        state = {k: v for k, v in without_reader(module.state_dict()).items() if not k.startswith("stop_head.")}
        for name in sorted(state):
            tensor = state[name].detach().cpu().contiguous()
            digest.update(name.encode() + str(tensor.dtype).encode())
            digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def encode_corpus(
    model,
    documents: Sequence[str],
    cache_dir: str | Path,
    model_id: str | None = None,
    shard_size: int = 1024,
    batch_size: int = 32,
    show_progress_bar: bool = True,
    pool: dict | None = None,
) -> np.ndarray:
    """Document embeddings of ``documents`` (one row each, in order), built shard by shard in ``cache_dir``.

    Args:
        model: A ``SentenceTransformer``; documents go through ``encode_document``.
        documents: The corpus texts.
        cache_dir: Folder of the shards; created if missing, continued if it holds shards of this corpus.
        model_id: What identifies the model's vectors; default :func:`model_identity` (its weights and the
            settings that reach documents). A cache made under another id is refused.
        shard_size: Documents per shard (work lost to an interruption is at most one shard).
        batch_size: Passed to ``encode_document``.
        show_progress_bar: A bar over documents, starting at those already cached.
        pool: A pool of processes from ``model.start_multi_process_pool(devices)`` (e.g. one per GPU): each
            shard is split between them, as ``encode_document(..., pool=pool)`` splits its input. Same vectors.

    Returns:
        ``float32`` array of shape ``(len(documents), dimension)``.

    Raises:
        TypeError / ValueError: ``documents`` is not a non-empty sequence of strings.
        ValueError: ``cache_dir`` holds shards of another corpus, shard size or model.
    """
    if isinstance(documents, str) or not isinstance(documents, Sequence):
        raise TypeError(f"Expected a sequence of strings, got {type(documents).__name__}")
    if len(documents) == 0:
        raise ValueError("Expected at least one document, got none")
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    manifest = {
        "documents": len(documents),
        "corpus_sha256": corpus_digest(documents),
        "shard_size": shard_size,
        "model": model_id or model_identity(model),
    }
    manifest_path = cache_dir / MANIFEST
    if manifest_path.is_file():
        found = json.loads(manifest_path.read_text())
        if found != manifest:
            changed = sorted(key for key in manifest if found.get(key) != manifest[key])
            raise ValueError(f"{cache_dir} holds shards of another build (differs in {changed}); use a new folder")
    else:
        write_file(manifest_path, json.dumps(manifest, indent=2))

    starts = range(0, len(documents), shard_size)
    paths = [cache_dir / f"shard-{index:06d}.npy" for index in range(len(starts))]
    done = sum(min(shard_size, len(documents) - start) for start, path in zip(starts, paths) if path.is_file())
    with tqdm(total=len(documents), initial=done, unit="doc", desc="Indexing", disable=not show_progress_bar) as bar:
        for start, path in zip(starts, paths):
            if path.is_file():
                continue
            shard = documents[start : start + shard_size]
            vectors = model.encode_document(
                list(shard), batch_size=batch_size, convert_to_numpy=True, pool=pool, show_progress_bar=False
            )
            _save_array(path, np.asarray(vectors, dtype=np.float32))
            bar.update(len(shard))
    return np.concatenate([np.load(path) for path in paths])


def _save_array(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    write_file(path, buffer.getvalue())
