"""The ``st-search-r3`` command."""

from __future__ import annotations

import argparse
import logging
import time

from st_search_r3.base_model import DEFAULT_BASE_MODEL


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="st-search-r3", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    install = commands.add_parser("install", help="build the default 'search-r3' model (idempotent)")
    install.add_argument("--base-model", default=DEFAULT_BASE_MODEL, help="causal LM to build on")
    install.add_argument("--force", action="store_true", help="rebuild even if installed")
    install.add_argument("--weights", help="a trained adapter folder to merge (default: the shipped one, if any)")
    path = commands.add_parser("path", help="print the folder of the installed model")
    path.add_argument("--base-model", default=DEFAULT_BASE_MODEL)
    commands.add_parser("demo", help="index a small real corpus with faiss and run a few queries")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    if args.command == "install":
        from st_search_r3.install import install as run_install

        start = time.perf_counter()
        folder = run_install(args.base_model, force=args.force, weights=args.weights)
        print(f"search-r3 installed in {folder} ({time.perf_counter() - start:.1f} s)")
    elif args.command == "path":
        from st_search_r3.install import installed_path

        print(installed_path(args.base_model))
    elif args.command == "demo":
        from st_search_r3.demo import run_demo

        run_demo()


if __name__ == "__main__":
    main()
