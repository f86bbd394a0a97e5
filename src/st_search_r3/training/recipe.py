"""What a stage-1 run trains on, pinned: the built data's hash and the triplets it draws.

A run mixes the training triplets of its ``sources`` (each repeated or subsampled by its weight), shuffles
them and keeps the first ``max_train_pairs``. That draw depends only on the sources' sizes, the weights and the
seed, so :func:`draw_rows` computes it without the data, and a recipe's record can be checked anywhere;
:func:`data_sha256` pins the built files the rows index into. The training splits (corpus, queries, qrels) are
text and rebuild byte for byte anywhere: they are pinned. The mined triplets' negatives are ranked by
all-MiniLM-L6-v2, whose float arithmetic differs between CPUs and library versions, so they are compared and a
difference is only reported: the run then draws the same rows with other negatives.

``python -m st_search_r3.training.recipe CONFIG.yaml [...]`` prints, for each recipe config, the data hashes and the
draw's hashes on the built data (what a training record stores under ``draw``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from st_search_r3.training.train_data import data_files_sha256

logger = logging.getLogger(__name__)
SPLIT_FOLDER = "train"  # <source>/train/: the training split's text; <source>/train_triplets/: what mining made of it


def data_fingerprint(root: Path, sources: list[str]) -> dict[str, str]:
    """The sha256 of every training file of ``sources``, from their build manifests."""
    fingerprint = {}
    for source in sources:
        manifest = root / source / "manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(f"{manifest} is missing: build the data first: python -m st_search_r3.data.build")
        files = json.loads(manifest.read_text())["files"]
        fingerprint.update({f"{source}/{name}": digest for name, digest in files.items() if name.startswith("train")})
    return fingerprint


def data_sha256(fingerprint: dict[str, str]) -> str:
    """One hash of a :func:`data_fingerprint`."""
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()


def split_files(fingerprint: dict[str, str], mined: bool = False) -> dict[str, str]:
    """The training splits' files of a :func:`data_fingerprint` (``mined``: the other files, the mined triplets)."""
    return {name: digest for name, digest in fingerprint.items() if (name.split("/")[1] == SPLIT_FOLDER) != mined}


def check_data(
    root: Path,
    sources: list[str],
    expected: str | None,
    train_data: list[str] | None = None,
    expected_triplets: str | None = None,
) -> dict[str, str]:
    """The training data's hashes: ``data_sha256`` (of the built ``sources``' training splits under ``root``, or of
    the ``train_data`` files) and, for built sources, ``triplets_sha256`` (of their mined triplets).

    Raises ``ValueError`` when ``data_sha256`` is not ``expected`` (``None``: any); logs a warning when the mined
    triplets are not ``expected_triplets`` (``None``: no comparison).
    """
    if train_data:
        actual = data_sha256({spec: data_files_sha256(spec) for spec in train_data})
        if expected is not None and actual != expected:
            raise ValueError(
                f"The training data is not the data this recipe was made on (data_sha256 {actual}, the recipe pins "
                f"{expected}). Check the files given as --train_data, or pass `--data_sha256 null`."
            )
        return {"data_sha256": actual}
    fingerprint = data_fingerprint(root, sources)
    hashes = {
        "data_sha256": data_sha256(split_files(fingerprint)),
        "triplets_sha256": data_sha256(split_files(fingerprint, mined=True)),
    }
    if expected is not None and hashes["data_sha256"] != expected:
        raise ValueError(
            f"The training splits are not those this recipe was made on (data_sha256 {hashes['data_sha256']}, the "
            f"recipe pins {expected}). Rebuild them with `python -m st_search_r3.data.build --sources "
            f"{' '.join(sources)}` (seed 0, Debian 12 archives, the Python of the recipe), or pass "
            "`--data_sha256 null` to train on the data you have."
        )
    if expected_triplets is not None and hashes["triplets_sha256"] != expected_triplets:
        logger.warning(
            "The mined training triplets differ from the recipe's (triplets_sha256 %s, the recipe's %s): their "
            "negatives were ranked by all-MiniLM-L6-v2 on other float kernels or library versions. The run draws "
            "the same rows with these negatives; it will not reproduce the recipe's weights bit for bit.",
            hashes["triplets_sha256"],
            expected_triplets,
        )
    return hashes


def draw_rows(
    sizes: dict[str, int], weights: list[float] | None, max_train_pairs: int, seed: int
) -> list[tuple[str, int]]:
    """``(source, row)`` of every drawn triplet, in training order.

    Each source's rows enter ``int(weight)`` times plus a random ``weight % 1`` share (drawn with ``seed``), in
    the order of ``sizes``; the mix is permuted with ``seed`` (as ``datasets.Dataset.shuffle(seed=seed)`` does)
    and cut to ``max_train_pairs``.
    """
    weights = weights or [1.0] * len(sizes)
    rows = []
    for (source, size), weight in zip(sizes.items(), weights, strict=True):
        whole, share = divmod(weight, 1.0)
        extra = np.random.default_rng(seed).permutation(size)[: round(share * size)]
        rows += [(source, row) for row in [*range(size)] * int(whole) + sorted(extra.tolist())]
    order = np.random.default_rng(seed).permutation(len(rows))[:max_train_pairs]
    return [rows[i] for i in order]


def rows_sha256(rows: list[tuple[str, int]]) -> str:
    """One hash of a draw's ``(source, row)`` list."""
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def ids_sha256(rows: list[tuple[str, int]], ids: dict[str, list[str]]) -> str:
    """One hash of the drawn triplets' ids (``ids[source][row]``: the query id and the negative's id)."""
    return hashlib.sha256(json.dumps([ids[source][row] for source, row in rows]).encode()).hexdigest()


def main(argv: list[str] | None = None) -> None:
    from sentence_transformers import SentenceTransformerTrainingArguments

    from st_search_r3.training.config import SearchR3SFTConfig, parse_config
    from st_search_r3.training.sft_data import load_triplets

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+", type=Path)
    for path in parser.parse_args(argv).configs:
        config, args = parse_config((SearchR3SFTConfig, SentenceTransformerTrainingArguments), path, "", [])
        built = check_data(config.root(), config.sources, None, config.train_data)
        draw = load_triplets(config, args.seed)[1]  # the draw training itself records
        print(json.dumps({"config": str(path), **built, "draw": draw}, indent=2))


if __name__ == "__main__":
    main()
