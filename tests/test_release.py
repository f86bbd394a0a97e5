"""A release is consistent: one version, named by the changelog with the sha256 of the weights it ships."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import st_search_r3
from st_search_r3.model_card import SHIPPED_WEIGHTS

ROOT = Path(__file__).parent.parent


def changelog_sections() -> dict[str, str]:
    text = (ROOT / "CHANGELOG.md").read_text()
    parts = re.split(r"^## (\d+\.\d+\.\d+)\b.*$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def test_the_current_version_names_the_shipped_adapter_and_no_other_version_does():
    sections = changelog_sections()
    assert next(iter(sections)) == st_search_r3.__version__, "the newest changelog entry is the package's version"
    shipped = hashlib.sha256((SHIPPED_WEIGHTS / "adapter_model.safetensors").read_bytes()).hexdigest()
    named = {version: re.findall(r"Adapter sha256: `([0-9a-f]{64})`", text) for version, text in sections.items()}
    assert all(len(hashes) <= 1 for hashes in named.values()), "one weight set per version"
    assert named[st_search_r3.__version__] == [shipped], "new weights need a new version (and changelog entry)"
    assert [v for v, hashes in named.items() if shipped in hashes] == [st_search_r3.__version__]


def test_the_package_version_comes_from_one_place():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'path = "src/st_search_r3/__init__.py"' in pyproject
    assert not re.search(r"^version\s*=", pyproject, flags=re.MULTILINE)
