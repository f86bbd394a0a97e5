"""What one document costs by design: documents/s of the document path for each prompt format and depth of
the decoder, beside all-MiniLM-L6-v2 on the same documents in the same run.

    python benchmarks/document_cost.py [--source wordnet] [--documents 512]

Speed does not depend on the weights, so each design runs on the shipped model with its settings changed:
the prompt format (``compact_direct_prompt`` off: ``...<|im_end|> <|im_start|>assistant The embedding is
<|embed_token|>``; on: ``...text<|embed_token|>``) and the number of decoder layers the document passes
through (``embedding_layers``: the first k of 30, as an embedder read at layer k runs). Both are settings
a model can be trained for (a depth-10 read learned far slower, see the README); the depths show how far
the architecture is from the 4x target of issue 14. Writes
``document_cost.{json,md}`` in ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from index_speed import corpus, load  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def documents_per_second(model, documents: list[str], batch_size: int) -> float:
    model.encode_document(documents[:batch_size], batch_size=batch_size)  # warm-up: oneDNN's first shapes
    start = time.perf_counter()
    model.encode_document(documents, batch_size=batch_size)
    return len(documents) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="wordnet", choices=["wordnet", "debian"])
    parser.add_argument("--documents", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--layers", type=int, nargs="+", default=[30, 20, 15, 12])
    args = parser.parse_args()
    torch.manual_seed(0)
    documents = corpus(args.source)[: args.documents]

    minilm_rate = documents_per_second(load("all-MiniLM-L6-v2"), documents, args.batch_size)
    model = load("search-r3")
    module = model[0]
    rows = []
    for compact in (False, True):
        module.compact_direct_prompt = compact
        tokens = module.preprocess(documents, task="document")["attention_mask"].sum().item() / len(documents)
        for depth in args.layers:
            module.embedding_layers = depth  # the module's own shallow read: documents run only these layers
            rate = documents_per_second(model, documents, args.batch_size)
            rows.append(
                {"compact": compact, "layers": depth, "tokens": tokens, "docs_per_s": rate, "ratio": minilm_rate / rate}
            )
            print(f"compact={compact} layers={depth}: {rate:.1f} docs/s, MiniLM {minilm_rate / rate:.1f}x faster")
    module.embedding_layers = None

    command = "python " + shlex.join(sys.argv)
    header = f"# {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads\n# `{command}`\n"
    lines = [
        header,
        f"{len(documents)} {args.source} documents, batch {args.batch_size}, shipped settings otherwise "
        f"(matmul precision {module.matmul_precision}). all-MiniLM-L6-v2 in the same run: {minilm_rate:.1f} docs/s.",
        "",
        "| prompt | decoder layers | tokens per document (template included) | docs/s | MiniLM / search-r3 |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        prompt = "compact (text, then the token)" if row["compact"] else 'assistant turn ("The embedding is")'
        lines.append(
            f"| {prompt} | {row['layers']} | {row['tokens']:.1f} | {row['docs_per_s']:.1f} | {row['ratio']:.1f}x |"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "document_cost.md").write_text("\n".join(lines) + "\n")
    report = {"command": command, "source": args.source, "minilm_docs_per_s": minilm_rate, "rows": rows}
    (RESULTS / "document_cost.json").write_text(json.dumps(report, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
