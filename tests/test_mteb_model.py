from __future__ import annotations

import json
import subprocess
import sys

import mteb
import pytest
from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper

import st_search_r3
from st_search_r3 import install as install_module
from st_search_r3.data.sources import SOURCES
from st_search_r3.model_card import SHIPPED_WEIGHTS
from st_search_r3.mteb.model import SEARCH_R3_META
from st_search_r3.mteb.tasks import WordNetDemoRetrieval


def test_import_mteb_registers_model_and_task_in_a_fresh_interpreter():
    code = (
        "import mteb\n"
        "meta = mteb.get_model_meta('search-r3')\n"
        "print(meta.name, meta.embed_dim, meta.use_instructions)\n"
        "print(mteb.get_task('SearchR3WordNetDemo').metadata.name)\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.split() == ["st-search-r3/search-r3", "576", "True", "SearchR3WordNetDemo"]


IMPORT_COST = """
import sys, time
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "_RegisterAfterMtebImport"]
import mteb
before = set(sys.modules)
start = time.perf_counter()
import st_search_r3.mteb.model, st_search_r3.mteb.tasks
print(time.perf_counter() - start)
print(" ".join(sorted(set(sys.modules) - before)))
"""


def test_registering_with_mteb_costs_little_on_top_of_import_mteb():
    """What the import hook adds to `import mteb`: our own light modules (no torch, no transformers: mteb itself
    does not import them) and well under 0.2 s (`import mteb` itself takes ~3 s)."""
    result = subprocess.run([sys.executable, "-c", IMPORT_COST], capture_output=True, text=True, check=True)
    seconds, modules = result.stdout.splitlines()
    assert all(name.startswith("st_search_r3") for name in modules.split()), modules
    assert float(seconds) < 0.2


def test_model_meta_is_truthful():
    assert SEARCH_R3_META.similarity_fn_name == "cosine"
    assert SEARCH_R3_META.license == "apache-2.0" and SEARCH_R3_META.open_weights
    assert SEARCH_R3_META.adapted_from == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert SEARCH_R3_META.public_training_code
    shipped = json.loads((SHIPPED_WEIGHTS / "search_r3_config.json").read_text())
    assert SEARCH_R3_META.max_tokens == shipped["max_seq_length"], "the meta follows the shipped settings"
    assert SEARCH_R3_META.revision == st_search_r3.__version__


def test_meta_names_every_source_the_shipped_weights_trained_on():
    record = json.loads((SHIPPED_WEIGHTS / "training_record.json").read_text())
    sources = {source for stage in [*record["previous_stages"], record] for source in stage["config"]["sources"]}
    assert sources == {"wordnet", "debian", "pycode", "manpages", "infomanuals"}
    for source in sources:
        assert SOURCES[source]["source"] in SEARCH_R3_META.public_training_data


def test_model_meta_sizes_come_from_the_packaged_model():
    from gguf import GGUFReader

    from st_search_r3.base_model import packaged_gguf_path

    reader = GGUFReader(packaged_gguf_path())
    hidden = int(reader.fields["llama.embedding_length"].parts[-1][0])
    assert SEARCH_R3_META.embed_dim == hidden == 576  # SmolLM2-135M's width, as its model card gives it
    # Every tensor of the base plus the added <|embed_token|> row: 134,515,008 + 576 for SmolLM2-135M.
    assert SEARCH_R3_META.n_parameters == sum(int(t.n_elements) for t in reader.tensors) + hidden == 134_515_584


def test_trained_tasks_are_not_zero_shot_and_others_are():
    trained = ["SearchR3WordNetRetrieval", "SearchR3DebianRetrieval", "SearchR3PythonCodeRetrieval"]
    trained += ["SearchR3ManPagesRetrieval", "SearchR3InfoManualsRetrieval"]
    for task in [*trained, "SearchR3WordNetDemo"]:
        assert SEARCH_R3_META.is_zero_shot_on([task]) is False
    assert SEARCH_R3_META.is_zero_shot_on(["NFCorpus", "SciFact"]) is True


def test_get_model_loads_the_installed_model(tiny_llm, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    real_install = install_module.install
    monkeypatch.setattr(install_module, "install", lambda: real_install(tiny_llm))
    model = mteb.get_model("search-r3")
    assert isinstance(model, SentenceTransformerEncoderWrapper)
    assert model.mteb_model_meta.name == "st-search-r3/search-r3"
    assert model.model.get_embedding_dimension() == 64


def test_evaluate_reasons_for_queries_and_not_for_documents(tiny_model, monkeypatch):
    module = tiny_model[0]
    batches = []
    original_forward = module.forward

    def recording_forward(features, task=None, **kwargs):
        batches.append((task, len(features["input_ids"])))
        return original_forward(features, task=task, **kwargs)

    monkeypatch.setattr(module, "forward", recording_forward)
    results = mteb.evaluate(SentenceTransformerEncoderWrapper(tiny_model), WordNetDemoRetrieval(), cache=None)
    score = results.task_results[0].get_score()
    assert 0.0 <= score <= 1.0
    assert sum(n for task, n in batches if task == "query") == 40
    assert sum(n for task, n in batches if task == "document") == 600
    assert {task for task, _ in batches} == {"query", "document"}


def test_base_shape_is_read_from_the_gguf_once_then_from_its_cache(tmp_path, monkeypatch):
    import gguf

    from st_search_r3.base_model import packaged_base_shape

    monkeypatch.setenv("ST_SEARCH_R3_HOME", str(tmp_path))
    first = packaged_base_shape()
    assert (tmp_path / "base").is_dir()

    def no_reading(*args, **kwargs):
        raise AssertionError("the GGUF header was parsed again")

    monkeypatch.setattr(gguf, "GGUFReader", no_reading)
    assert packaged_base_shape() == first


def tiny_reader_model(tiny_llm, folder) -> str:
    """The tiny LLM saved with a reader whose LoRA is not zero, as train/read.py writes a model."""
    from sentence_transformers import SentenceTransformer

    from st_search_r3 import SearchR3
    from tests.test_reading import with_reader

    model = SentenceTransformer(modules=[SearchR3(tiny_llm, max_seq_length=192, reasoning=False, read_top_k=2)])
    with_reader(model)
    model.save(str(folder))
    return str(folder)


def test_reader_searches_both_passes_in_mteb(tiny_llm, tmp_path, monkeypatch):
    from sentence_transformers import SentenceTransformer

    from st_search_r3.mteb.model import SearchR3Reader

    folder = tiny_reader_model(tiny_llm, tmp_path / "reader")
    monkeypatch.setattr(install_module, "install", lambda: folder)
    model = mteb.get_model("search-r3-reader")
    assert isinstance(model, SearchR3Reader) and model.mteb_model_meta.name == "st-search-r3/search-r3-reader"
    assert mteb.get_model_meta("search-r3").name == "st-search-r3/search-r3"  # plain search-r3 stays as it is
    task = WordNetDemoRetrieval()
    results = mteb.evaluate(model, task, cache=None)
    reading = results.task_results[0].get_score()
    plain = mteb.evaluate(mteb.get_model("search-r3"), task, cache=None).task_results[0].get_score()
    assert 0.0 <= reading <= 1.0 and reading != plain  # the second pass ran: its vectors are the reader's

    task.load_data()
    split = task.dataset["default"]["test"]
    model.index(split["corpus"], task_metadata=task.metadata, hf_split="test", hf_subset="default", encode_kwargs={})
    queries = split["queries"].select(range(5))
    found = model.search(
        queries, task_metadata=task.metadata, hf_split="test", hf_subset="default", top_k=3, encode_kwargs={}
    )
    direct = SentenceTransformer(folder, trust_remote_code=True)
    expected = direct[0].search(list(queries["text"]), model.documents, top_k=3)
    assert [list(found[q]) for q in queries["id"]] == [
        [model.document_ids[h["corpus_id"]] for h in row] for row in expected
    ]


@pytest.mark.slow
def test_mteb_cli_runs_the_reader(tiny_llm, tmp_path):
    folder = tiny_reader_model(tiny_llm, tmp_path / "reader")
    # The CLI itself, with the loader's installed model swapped for the tiny one.
    arguments = ["mteb", "run", "-m", "search-r3-reader", "-t", "SearchR3WordNetDemo"]
    arguments += ["--output-folder", str(tmp_path / "results")]
    code = (
        "import sys\n"
        "import st_search_r3.install as install\n"
        f"install.install = lambda: {folder!r}\n"
        "from mteb.cli import main\n"
        f"sys.argv = {arguments!r}\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    scores = list((tmp_path / "results").rglob("SearchR3WordNetDemo.json"))
    assert len(scores) == 1
    assert 0.0 <= json.loads(scores[0].read_text())["scores"]["test"][0]["ndcg_at_10"] <= 1.0


def test_hybrid_searches_with_bm25_in_mteb(tiny_llm, tmp_path, monkeypatch):
    from sentence_transformers import SentenceTransformer

    from st_search_r3 import SearchR3
    from st_search_r3.lexical import LEXICAL_WEIGHT
    from st_search_r3.mteb.model import SearchR3Hybrid

    folder = str(tmp_path / "model")
    SentenceTransformer(modules=[SearchR3(tiny_llm, max_seq_length=192, reasoning=False)]).save(folder)
    monkeypatch.setattr(install_module, "install", lambda: folder)
    model = mteb.get_model("search-r3-hybrid")
    assert isinstance(model, SearchR3Hybrid) and model.mteb_model_meta.name == "st-search-r3/search-r3-hybrid"
    assert model.lexical_weight == LEXICAL_WEIGHT and model.mteb_model_meta.model_type == ["hybrid"]
    task = WordNetDemoRetrieval()
    hybrid = mteb.evaluate(model, task, cache=None).task_results[0].get_score()
    plain = mteb.evaluate(mteb.get_model("search-r3"), task, cache=None).task_results[0].get_score()
    assert 0.0 <= hybrid <= 1.0 and hybrid != plain  # BM25 moved the ranking of the untrained model's cosines

    task.load_data()
    split = task.dataset["default"]["test"]
    model.index(split["corpus"], task_metadata=task.metadata, hf_split="test", hf_subset="default", encode_kwargs={})
    queries = split["queries"].select(range(5))
    found = model.search(
        queries, task_metadata=task.metadata, hf_split="test", hf_subset="default", top_k=3, encode_kwargs={}
    )
    direct = SentenceTransformer(folder, trust_remote_code=True)
    expected = direct[0].search(list(queries["text"]), model.documents, top_k=3, lexical_weight=LEXICAL_WEIGHT)
    assert [list(found[q]) for q in queries["id"]] == [
        [model.document_ids[h["corpus_id"]] for h in row] for row in expected
    ]
