"""The docs a user reads say what the committed results say, and nothing of how the work was organised."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_generated_docs_match_the_committed_results():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "evaluation_doc.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_readme_is_a_short_users_page_linking_existing_docs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for link in re.findall(r"\]\(((?:docs/)?[A-Za-z-]+\.md)(?:#[^)]*)?\)", readme):
        assert (ROOT / link).is_file(), link


def test_no_tracked_file_speaks_of_tracker_numbers_or_this_machine():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    pattern = re.compile("|".join(["issue [0-9]", "this machine", r"\bsessions?\b"]), re.IGNORECASE)
    # Real text (test fixtures, the shipped WordNet sample, the tokenizer's vocabulary, per-query result dumps of
    # queries and model output) may say anything.
    real_text = {"fixtures", "resources"}
    offenders = []
    for name in files:
        path = ROOT / name
        if (
            path.suffix in {".png", ".safetensors", ".npz", ".jsonl"}
            or real_text & set(path.parts)
            or path.name == "tokenizer.json"
        ):
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if pattern.search(line) and 'scope="session"' not in line and path.name != "test_docs.py":
                offenders.append(f"{name}:{number}: {line.strip()[:80]}")
    assert offenders == []


def test_the_module_map_names_every_module_of_the_package():
    """docs/architecture.md's module map: every module and sub-package of st_search_r3, and nothing that is gone."""
    package = ROOT / "src" / "st_search_r3"
    modules = {p.name for p in package.glob("*.py") if p.name != "__init__.py"}
    modules |= {f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").is_file()}
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = [line.split("|")[1] for line in text[text.index("## Module map") :].splitlines() if line.startswith("| `")]
    named = {name for cell in rows for name in re.findall(r"`([a-z_]+(?:\.py|/))`", cell)}
    assert modules <= named, f"not in the module map: {sorted(modules - named)}"
    assert named <= modules, f"in the module map but not in the package: {sorted(named - modules)}"
