from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from st_search_r3.data.infomanuals import build, read_sections

INFO = Path(__file__).parent / "fixtures" / "info"


def test_nodes_give_their_unnumbered_title_and_text_without_the_menu():
    sections = {node: (title, text) for node, title, text in read_sections(INFO)}
    assert list(sections) == ["sed:Introduction", "sed:Invoking sed", "sed:Overview", "sed:Command-Line Options"]
    title, text = sections["sed:Invoking sed"]
    assert title == "Running sed"  # "2 Running sed", underlined with '*'
    assert text == (
        "This chapter covers how to run ‘sed’. Details of ‘sed’ scripts and individual ‘sed’ commands are "
        "discussed in the next chapter."
    )
    assert "* Menu:" not in text and "* Overview::" not in text


def test_a_manual_in_parts_reads_like_one_file(tmp_path):
    nodes = gzip.decompress((INFO / "sed.info.gz").read_bytes()).decode().split("\x1f")
    (tmp_path / "sed.info-1.gz").write_bytes(gzip.compress("\x1f".join(nodes[:3]).encode()))
    (tmp_path / "sed.info-2.gz").write_bytes(gzip.compress(("\x1f" + "\x1f".join(nodes[3:])).encode()))
    assert list(read_sections(tmp_path)) == list(read_sections(INFO))


def _unpacked(folder: Path, info: Path) -> Path:
    (folder / "root" / "usr" / "share").mkdir(parents=True)
    (folder / "root" / "usr" / "share" / "info").symlink_to(info.resolve())
    return folder


def test_splits_keep_titled_sections_of_two_words_and_ten_words_of_text(tmp_path):
    splits = build(_unpacked(tmp_path, INFO), seed=0, supplement=False)
    kept = {doc: text for split in splits.values() for doc, text in split.corpus.items()}
    assert sorted(kept) == ["sed:Command-Line Options", "sed:Invoking sed"]  # one-word titles are dropped
    queries = {query: text for split in splits.values() for query, text in split.queries.items()}
    assert queries == {"q-sed:Command-Line Options": "Command-Line Options", "q-sed:Invoking sed": "Running sed"}


def test_titles_of_several_sections_are_dropped_as_ambiguous(tmp_path):
    info = tmp_path / "info"
    info.mkdir()
    shutil.copy(INFO / "sed.info.gz", info / "sed.info.gz")
    shutil.copy(INFO / "sed.info.gz", info / "sed-copy.info.gz")
    splits = build(_unpacked(tmp_path / "download", info), seed=0, supplement=False)
    assert all(not split.corpus for split in splits.values())


def _node(manual: str, node: str, title: str, text: str) -> str:
    return f"\x1fFile: {manual}.info,  Node: {node},  Up: Top\n\n{title}\n{'*' * len(title)}\n\n{text}\n"


def test_the_supplement_adds_training_pairs_only_and_never_what_dev_or_test_hold(tmp_path):
    running_sed = next(text for node, _, text in read_sections(INFO) if node == "sed:Invoking sed")
    m4 = tmp_path / "m4"
    m4.mkdir()
    nodes = [
        _node("m4", "Invoking m4", "1 Running m4", "The m4 command takes options, then the files it reads."),
        _node("m4", "Options", "2 Command-Line Options", "The title of a test query: dropped however new its text."),
        _node("m4", "Copy", "3 Copied chapter", "Boilerplate, copied from sed: " + running_sed),
    ]
    (m4 / "m4.info.gz").write_bytes(gzip.compress("".join(nodes).encode()))
    everything_held_out = {"seed": 0, "dev_fraction": 0.0, "test_fraction": 1.0}
    plain = build(_unpacked(tmp_path / "main", INFO), supplement=False, **everything_held_out)
    splits = build(tmp_path / "main", supplement_folder=_unpacked(tmp_path / "extra", m4), **everything_held_out)
    assert splits["test"] == plain["test"] and len(plain["test"].queries) == 2
    assert splits["train"].queries == {"q-m4:Invoking m4": "Running m4"}
