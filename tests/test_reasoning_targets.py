from st_search_r3.data.reasoning_targets import DistinctiveWords, code_target, reasoning_targets, wordnet_target


def test_wordnet_target_names_the_words_and_their_kind_not_the_usage():
    document = "lion, king of beasts, Panthera leo. A kind of: big cat, cat. Usage: the lion roared"
    assert wordnet_target(document) == "Key terms: lion, king of beasts, Panthera leo. Related: big cat, cat."
    assert wordnet_target("oil change") == "Key terms: oil change."


def test_distinctive_words_prefer_rare_words_and_skip_the_query():
    documents = [
        "the compiler compiles C code with optimization",
        "the editor edits text",
        "the compiler of the tools",
    ]
    words = DistinctiveWords(documents, top_k=2, min_documents=1)
    assert words(documents[0], exclude="C compiler") == ["code", "compiles"]


def test_code_target_gives_the_signature_and_identifiers():
    code = (
        "def urljoin(base, url, allow_fragments=True):\n    if not base:\n        return url\n    return urlparse(url)"
    )
    target = code_target("Join a base URL and a possibly relative URL", code)
    assert target.startswith("Function: urljoin(base, url, allow_fragments).")
    assert "urlparse" in target and "return" not in target


def test_unknown_source_is_an_error():
    import pytest

    with pytest.raises(ValueError, match="No reasoning targets"):
        reasoning_targets("nowhere", ["q"], ["d"])


def test_words_of_too_few_documents_are_left_out():
    documents = ["zyxel router firmware", "router setup", "router firmware tools", "firmware images"]
    assert DistinctiveWords(documents, top_k=3, min_documents=2)(documents[0]) == ["firmware", "router"]
