"""Python code search: the query is a function's first docstring line, the document its code.

Source: the standard library source of the running Python (``sysconfig.get_paths()["stdlib"]``; Python
Software Foundation License). Test suites, ``idlelib``, ``lib2to3``, ``ensurepip`` and ``site-packages``
are skipped. The document is the function's source with the docstring removed (first 40 lines).
Splits are by module file, so no function of a test module is seen in training, not even as a negative.
"""

from __future__ import annotations

import ast
import sys
import sysconfig
import textwrap
from collections.abc import Iterator
from pathlib import Path

from st_search_r3.data.retrieval_split import SPLITS, RetrievalSplit, assign_split

SKIPPED_PARTS = {"test", "tests", "idlelib", "lib2to3", "ensurepip", "site-packages", "__pycache__", "turtledemo"}
MAX_LINES = 40
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def read_functions(root: str | Path) -> Iterator[tuple[str, str, str]]:
    """Yields ``(module/qualified.name, first docstring line, code without docstring)``."""
    root = Path(root)
    if not root.is_dir() or not any(root.glob("*.py")):
        raise FileNotFoundError(f"{root} holds no Python modules; pass the standard library folder")
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if SKIPPED_PARTS & set(relative.parts) or relative.name.startswith("test_"):
            continue
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        lines = source.splitlines()
        module = relative.with_suffix("").as_posix()
        yield from _functions(tree, lines, module, prefix="")


def _functions(node: ast.AST, lines: list[str], module: str, prefix: str) -> Iterator[tuple[str, str, str]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ClassDef):
            yield from _functions(child, lines, module, f"{prefix}{child.name}.")
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            docstring = ast.get_docstring(child)
            if docstring and child.body and isinstance(child.body[0], ast.Expr):
                summary = docstring.strip().splitlines()[0].strip()
                doc_node = child.body[0]
                start = child.decorator_list[0].lineno if child.decorator_list else child.lineno
                code = lines[start - 1 : doc_node.lineno - 1] + lines[doc_node.end_lineno : child.end_lineno]
                code = [line for line in code if line.strip()][:MAX_LINES]
                yield f"{module}:{prefix}{child.name}", summary, textwrap.dedent("\n".join(code))


def build(root: str | Path | None = None, seed: int = 0, dev_fraction: float = 0.05, test_fraction: float = 0.1):
    """Builds the train / dev / test splits (``{split name: RetrievalSplit}``).

    Kept: first docstring lines of at least four words, on functions with at least two lines of code.
    When several functions share a summary within a module, only the first is kept.
    """
    splits = {name: RetrievalSplit() for name in SPLITS}
    seen: set[tuple[str, str]] = set()
    for name, summary, code in read_functions(root or stdlib_root()):
        module = name.split(":")[0]
        if len(summary.split()) < 4 or code.count("\n") < 1 or (module, summary) in seen:
            continue
        seen.add((module, summary))
        split = splits[assign_split(module, seed, dev_fraction, test_fraction)]
        split.add_pair(f"q-{name}", summary, name, code, group=module)
    return splits
