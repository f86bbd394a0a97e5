from __future__ import annotations

from pathlib import Path

import pytest

from st_search_r3.data.faqs import build, perl_faq, pod_text, read_faqs

ROOT = Path(__file__).parent / "fixtures" / "faqs"


def test_faq_questions_come_with_their_answers_as_plain_text():
    entries = {question: answer for _, question, answer in read_faqs("faqs", ROOT)}
    assert list(entries) == [
        "Why is int() broken?",
        "Why isn't my octal data interpreted correctly?",
        'Why does $var where var="foo bar" not do what I expect?',
        "In which startup file do I put...?",
        "What is the difference between `export' and the ALL_EXPORT option?",
    ]
    assert entries["Why is int() broken?"].startswith("Your int() is most probably working just fine.")
    # The author's credit that opens an answer is not part of it.
    assert entries["Why isn't my octal data interpreted correctly?"].startswith("You're probably trying to convert")
    assert all("<" not in answer.split("\n")[0] for answer in entries.values())  # no POD codes or HTML tags
    assert entries["In which startup file do I put...?"].startswith("When zsh starts up, there are four files")


def test_pointer_answers_are_dropped():
    questions = [question for _, question, _ in perl_faq(ROOT)]
    assert "How can I output Roman numerals?" in questions  # "Get the ... Roman module."
    assert "How can I output Roman numerals?" not in [question for _, question, _ in read_faqs("faqs", ROOT)]


def test_vim_faq_entries_are_read_once_with_wrapped_questions_joined():
    entries = list(read_faqs("vimfaq", ROOT))
    assert [entry for entry, _, _ in entries] == ["vim-10.1", "vim-10.2", "vim-10.3"]  # not the index's lines
    assert entries[2][1] == (
        "How do I configure Vim to maintain the horizontal cursor position when scrolling with the "
        "<Page Up>, <Page Down>, etc keys?"
    )
    assert entries[0][2].startswith("You can use 'G' command to jump to the last line")


@pytest.mark.parametrize(
    ("pod", "text"),
    [
        ("C<int()>", "int()"),
        ("C<< $x->[0] >>", "$x->[0]"),
        ("L<the docs|perlfunc/int>", "the docs"),
        ("B<C<nested>>", "nested"),
        ("1 E<lt> 2", "1 < 2"),
        # perlfaq4 lists index keywords after a question: the reader never sees them
        ("How do I find yesterday's date? X<date> X<yesterday> X<DateTime>", "How do I find yesterday's date?"),
        ("X<< <> >>Z<>the diamond", "the diamond"),
    ],
)
def test_pod_formatting_codes_become_text(pod, text):
    assert pod_text(pod) == text


def test_the_held_out_faq_is_a_test_split_only_and_the_others_split_by_question(tmp_path):
    (tmp_path / "root").symlink_to(ROOT.resolve())
    held_out = build("vimfaq", tmp_path, seed=0)
    assert not held_out["train"].queries and not held_out["dev"].queries
    assert len(held_out["test"].queries) == 3
    splits = build("faqs", tmp_path, seed=0, supplement=False)
    documents = [doc for split in splits.values() for doc in split.corpus]
    assert len(documents) == len(set(documents)) == 5
    for split in splits.values():
        for query, relevant in split.qrels.items():
            assert query == f"q-{next(iter(relevant))}"


def test_a_held_out_source_cannot_be_trained_on():
    from st_search_r3.training.config import SearchR3RLConfig, SearchR3SFTConfig

    with pytest.raises(ValueError, match="held out of training"):
        SearchR3SFTConfig(sources=["wordnet", "vimfaq"])
    with pytest.raises(ValueError, match="held out of training"):
        SearchR3RLConfig(source="vimfaq")


SUPPLEMENT = Path(__file__).parent / "fixtures" / "faqs_supplement"


def test_supplement_faqs_are_read_with_their_answers():
    from st_search_r3.data.faqs import SUPPLEMENT_READERS

    entries = {
        entry: (question, answer) for entry, question, answer in read_faqs("faqs", SUPPLEMENT, SUPPLEMENT_READERS)
    }
    # IO::Compress: section titles that are no question are skipped; the code of an answer is kept.
    assert [e for e in entries if e.startswith("IO-")] == ["IO-Compress-FAQ-2"]
    assert entries["IO-Compress-FAQ-2"][0] == "How do I recompress using a different compression?"
    # gitfaq: AsciiDoc markup and "+" continuations dropped, the answer ends at the next section's title.
    question, answer = entries["git-http-postbuffer"]
    assert question == "What does http.postBuffer really do?"
    assert answer.startswith("This option changes the size of the buffer") and "Credentials" not in answer
    assert "+" not in answer.split("\n\n") and "`" not in entries["git-user-name"][0]
    assert "git-config(1)" in entries["git-user-name"][1]
    assert entries["screen-0"][0].startswith("Why is it impossible to download a file with Kermit/sz/rz")
    assert entries["fetchmail-G1"] == (
        "What is fetchmail and why should I bother?",
        entries["fetchmail-G1"][1],
    ) and entries["fetchmail-G1"][1].startswith("Fetchmail is a one-stop solution to the remote mail retrieval problem")
    assert entries["procmail-2"][0].startswith("I installed procmail (i.e. typed 'make install'), but how am I")
    assert "procmail-3" in entries and "procmail-4" not in entries


def test_supplement_adds_training_questions_only(tmp_path):
    (tmp_path / "main").mkdir()
    (tmp_path / "main" / "root").symlink_to(ROOT.resolve())
    (tmp_path / "supplement").mkdir()
    (tmp_path / "supplement" / "root").symlink_to(SUPPLEMENT.resolve())
    alone = build("faqs", tmp_path / "main", supplement=False)
    both = build("faqs", tmp_path / "main", supplement_folder=tmp_path / "supplement")
    for split in ("dev", "test"):
        assert both[split].queries == alone[split].queries and both[split].corpus == alone[split].corpus
    added = set(both["train"].queries) - set(alone["train"].queries)
    assert len(added) >= 10 and "q-git-http-postbuffer" in added
