from __future__ import annotations

from pathlib import Path

from st_search_r3.data.manpages import build, read_pages, roff_to_text

MAN = Path(__file__).parent / "fixtures" / "man"


def test_pages_give_their_summary_and_plain_description():
    pages = {page: (summary, description) for page, summary, description in read_pages(MAN)}
    assert set(pages) == {"exit_group.2", "cbrt.3", "printf.3"}  # queue.3 only points to queue.7
    assert pages["cbrt.3"] == (
        "cube root function",
        "These functions return the (real) cube root of x. This function cannot fail; every representable real "
        "value has a representable real cube root.",
    )
    summary, description = pages["printf.3"]
    assert summary == "formatted output conversion"
    assert description.startswith("The functions in the printf() family produce output according to a format")
    assert "\\f" not in description and "\\-" not in description and "\n.B" not in description


def test_roff_macros_and_escapes_become_text():
    lines = [".PP", ".BR open (2)", "returns", r"\fIfd\fP \- a file", ".IR x ,", ".TP", r".B \-\-help", "prints help"]
    assert roff_to_text(lines) == "open(2) returns fd - a file x,\n\n--help prints help"


def test_splits_hold_every_kept_page_once(tmp_path):
    (tmp_path / "root" / "usr" / "share").mkdir(parents=True)
    (tmp_path / "root" / "usr" / "share" / "man").symlink_to(MAN.resolve())
    splits = build(tmp_path, seed=0)
    pages = [doc for split in splits.values() for doc in split.corpus]
    assert sorted(pages) == ["cbrt.3", "exit_group.2", "printf.3"]
    for split in splits.values():
        for query, relevant in split.qrels.items():
            assert query == f"q-{next(iter(relevant))}"
