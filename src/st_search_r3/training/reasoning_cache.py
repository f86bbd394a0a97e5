"""A model's greedy reasoning for training queries, generated once and kept on disk.

Queries are embedded after reasoning at inference, so stage 1 can train the embed token after the
model's own reasoning too. Generating it costs about a second per query on a 2-core CPU, so it is
done once, appended to a JSON-lines file batch by batch (an interrupted run resumes where it
stopped), and reused by every epoch and every later run whose model and settings are the same:
the file is named by a digest of the weights, the prompt and the decoding settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from tqdm.auto import tqdm

logger = logging.getLogger(__name__)


def cache_path(root: str | Path, module) -> Path:
    """``<root>/reasoning/<digest>.jsonl``: the cache file of what ``module`` reasons. The digest covers every
    weight of its LLM, the reasoning prompt, the budget and the repetition guards, so that two models with the
    same folder name or an edited prompt never share a cache."""
    import torch

    digest = hashlib.sha256()
    for key, value in sorted(module.get_config_dict().items()):
        if key in ("reasoning_prompt", "max_reasoning_tokens", "repetition_penalty", "no_repeat_ngram_size"):
            digest.update(f"{key}={value!r}\n".encode())
    for name, tensor in sorted(module.auto_model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return Path(root) / "reasoning" / f"{digest.hexdigest()[:16]}.jsonl"


def load_reasoning(path: str | Path) -> dict[str, str]:
    """``query -> reasoning`` from a cache file (empty when the file does not exist).

    A last line cut short by a crash is ignored: it is generated again.
    """
    path = Path(path)
    cached = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("Ignoring a truncated line in %s", path)
                continue
            cached[row["query"]] = row["reasoning"]
    return cached


def cache_reasoning(module, queries: list[str], path: str | Path, batch_size: int = 16) -> dict:
    """Generates the reasoning of every query not yet in ``path`` and appends it there.

    Args:
        module: A :class:`~st_search_r3.SearchR3` (its prompt, budget and weights decide the reasoning).
        queries: Query texts; duplicates are generated once.
        path: The JSON-lines cache, one ``{"query", "reasoning"}`` object per line.
        batch_size: Queries reasoned together. Queries are taken in order, sorted by length within
            windows of eight batches (less padding), so a run cut short covers a prefix of ``queries``.

    Returns:
        ``query -> reasoning`` (the greedy reasoning text) for all of ``queries``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cached = load_reasoning(path)
    missing = [q for q in dict.fromkeys(queries) if q not in cached]
    window = 8 * batch_size
    missing = [q for start in range(0, len(missing), window) for q in sorted(missing[start : start + window], key=len)]
    if missing:
        logger.info("Reasoning for %d queries (%d cached) into %s", len(missing), len(cached), path)
    with open(path, "a") as handle, tqdm(total=len(missing), desc="reasoning", unit="query") as progress:
        for start in range(0, len(missing), batch_size):
            batch = missing[start : start + batch_size]
            generated = module.reasoning_of(batch, batch_size=batch_size)
            for query, reasoning in zip(batch, generated):
                handle.write(json.dumps({"query": query, "reasoning": reasoning}) + "\n")
                cached[query] = reasoning
            handle.flush()
            os.fsync(handle.fileno())
            progress.update(len(batch))
    return {q: cached[q] for q in queries}
