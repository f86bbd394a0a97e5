"""st-search-r3: build, locate and try the search-r3 embedder (Search-R3: a causal LM that reasons, then embeds).

  st-search-r3 install      build the default model once (base LLM + shipped adapter) into the HF cache
  st-search-r3 path         print where it is installed (exit 1 if it is not)
  st-search-r3 demo         index a small real corpus with faiss and run a few queries, showing the reasoning
  st-search-r3 ship RUN     put a trained adapter (train/sft.py or train/rl.py output) into the package
                            (--stop-head: a train/stop.py head fitted on it)

Then: SentenceTransformer("search-r3", trust_remote_code=True), or mteb run -m search-r3 -t TASK.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from st_search_r3 import __version__
from st_search_r3.base_model import DEFAULT_BASE_MODEL


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="st-search-r3", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"st-search-r3 {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{install,path,demo,ship}")
    install = commands.add_parser("install", help="build the default 'search-r3' model (idempotent)")
    install.add_argument("--base-model", default=DEFAULT_BASE_MODEL, help="causal LM to build on")
    install.add_argument("--force", action="store_true", help="rebuild even if installed")
    install.add_argument("--weights", help="a trained adapter folder to merge (default: the shipped one, if any)")
    install.add_argument(
        "--cache-folder",
        action="append",
        default=[],
        help="also link the model into this folder's hub layout, for clients that load with a cache folder of their "
        "own (SentenceTransformer('search-r3', cache_folder=...)); repeatable",
    )
    path = commands.add_parser("path", help="print the folder of the installed model (exit 1 if not installed)")
    path.add_argument("--base-model", default=DEFAULT_BASE_MODEL)
    demo = commands.add_parser("demo", help="index a small real corpus with faiss and run a few queries")
    demo.add_argument("--reasoning", action="store_true", help="reason before embedding the queries")
    ship = commands.add_parser("ship", help="copy a trained adapter into the package (for releases)")
    ship.add_argument("run", type=Path, nargs="?", help="a train/sft.py or train/rl.py output folder (its final/)")
    ship.add_argument("--scores", type=Path, help="a markdown scores table for the model card")
    ship.add_argument("--stacked-on", type=Path, help="the stage-1 weights a train/rl.py run was installed from")
    ship.add_argument("--output", type=Path, help="where to (default: the package's st_search_r3/weights)")
    ship.add_argument("--stop-head", type=Path, help="a train/stop.py output (its final/) fitted on that adapter")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    if args.command == "install":
        from st_search_r3.install import install as run_install
        from st_search_r3.install import link_into

        start = time.perf_counter()
        folder = run_install(args.base_model, force=args.force, weights=args.weights)
        print(f"search-r3 installed in {folder} ({time.perf_counter() - start:.1f} s)")
        for cache_folder in args.cache_folder:
            print(f"linked into {link_into(cache_folder, folder)}")
    elif args.command == "path":
        from st_search_r3.install import installed_path

        folder = installed_path(args.base_model)
        if not (folder / "modules.json").is_file():
            print(f"search-r3 is not installed (it would go to {folder}); run: st-search-r3 install", file=sys.stderr)
            return 1
        print(folder)
    elif args.command == "demo":
        try:
            import faiss  # noqa: F401
        except ImportError:
            print("The demo indexes with faiss: pip install 'st-search-r3[demo]' (faiss-cpu)", file=sys.stderr)
            return 1
        from st_search_r3.demo import run_demo

        run_demo(reasoning=True if args.reasoning else None)
    elif args.command == "ship":
        from st_search_r3.training.ship import SHIPPED_WEIGHTS, ship

        ship(args.run, args.scores, args.stacked_on, args.output or SHIPPED_WEIGHTS, args.stop_head)
    return 0


if __name__ == "__main__":
    sys.exit(main())
