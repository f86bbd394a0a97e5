"""st_search_r3.data.build: a build that is killed or fails midway leaves the old data as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from st_search_r3.data import build
from st_search_r3.data.retrieval_split import RetrievalSplit

# A build of "faqs" from five pairs that stops at the mining step: it says so, then waits to be killed or fails.
BUILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from st_search_r3.data import build
    from st_search_r3.data.retrieval_split import RetrievalSplit

    split = RetrievalSplit()
    for i in range(5):
        split.add_pair(f"q{i}", f"question {i}", f"d{i}", f"answer {i}", group=f"g{i}")
    build.BUILDERS["faqs"] = lambda seed: {"dev": split, "test": split, "train": split}

    def mine(*args, **kwargs):
        print("mining", flush=True)
        if sys.argv[2] == "fail":
            raise RuntimeError("mining failed")
        time.sleep(120)

    build.mine_hard_negatives = mine
    build.build_source("faqs", Path(sys.argv[1]), 0, None)
    """
)


def old_data(out):
    old = RetrievalSplit()
    old.add_pair("q", "the old question", "d", "the old answer", group="g")
    old.save(out / "faqs" / "dev")
    (out / "faqs" / "manifest.json").write_text('{"name": "faqs", "old": true}')
    return {p.relative_to(out): p.read_bytes() for p in sorted((out / "faqs").rglob("*")) if p.is_file()}


@pytest.mark.parametrize("how", ["kill", "fail"])
def test_a_build_stopped_midway_leaves_the_old_data_intact(tmp_path, how):
    before = old_data(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-c", BUILD, str(tmp_path), how], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "mining", process.stderr.read()
    if how == "kill":
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode != 0
    after = {p.relative_to(tmp_path): p.read_bytes() for p in sorted((tmp_path / "faqs").rglob("*")) if p.is_file()}
    assert after == before
    if how == "fail":  # an error cleans its staging folder up; a kill leaves it beside the data, never in place
        assert sorted(p.name for p in tmp_path.iterdir()) == ["faqs"]


def test_a_finished_build_replaces_the_old_data(tmp_path, monkeypatch):
    old_data(tmp_path)
    split = RetrievalSplit()
    for i in range(5):
        split.add_pair(f"q{i}", f"question {i}", f"d{i}", f"answer {i}", group=f"g{i}")
    monkeypatch.setitem(build.BUILDERS, "faqs", lambda seed: {"dev": split, "test": split, "train": split})

    class Triplets:
        def __len__(self):
            return 5

        def save_to_disk(self, folder):
            os.makedirs(folder)

    monkeypatch.setattr(build, "mine_hard_negatives", lambda *args, **kwargs: Triplets())
    manifest = build.build_source("faqs", tmp_path, 0, None)
    assert manifest["counts"]["dev"]["queries"] == 5
    assert RetrievalSplit.load(tmp_path / "faqs" / "dev").queries == split.queries
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faqs"]
