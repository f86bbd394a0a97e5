"""Every script a user runs answers ``--help``: a renamed import or a broken argument parser fails here, not for
the user. One interpreter runs them all (``runpy``), so each script's imports are paid once."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

SCRIPTS = sorted(
    str(path.relative_to(ROOT))
    for folder in ("benchmarks", "train", "research")
    for path in (ROOT / folder).glob("*.py")
)
RUN_ALL = """
import contextlib, io, runpy, sys
for script in sys.argv[1:]:
    sys.argv = [script, "--help"]
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            runpy.run_path(script, run_name="__main__")
            print(script, "ran instead of printing its help", file=sys.stderr); sys.exit(1)
        except SystemExit as stop:
            if stop.code not in (0, None):
                raise
    assert "usage" in out.getvalue().lower(), script
"""


def test_every_script_answers_help():
    assert len(SCRIPTS) >= 15
    result = subprocess.run([sys.executable, "-c", RUN_ALL, *SCRIPTS], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]


def test_module_entry_points_answer_help():
    for module in ("st_search_r3.data.build", "st_search_r3.data.questions", "st_search_r3.cli"):
        result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 0 and "usage" in result.stdout.lower(), (module, result.stderr[-2000:])
