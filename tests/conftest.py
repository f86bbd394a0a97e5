"""A tiny random Llama with a ChatML tokenizer, built here so the tests need no download."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch
from sentence_transformers import SentenceTransformer
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from st_search_r3 import SearchR3
from st_search_r3.data import wordnet
from st_search_r3.data.demo import demo_split
from st_search_r3.data.mining import mine_hard_negatives

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).parent.parent


def run_train_script(script: str, config: str, *arguments) -> subprocess.CompletedProcess:
    """Runs ``train/<script>`` with ``train/configs/<config>`` and the given ``--field value`` arguments."""
    command = [sys.executable, str(ROOT / "train" / script), "--config", str(ROOT / "train" / "configs" / config)]
    return subprocess.run([*command, *map(str, arguments)], capture_output=True, text=True, cwd=ROOT)


CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def tiny_config(architecture: str, tokenizer, tied: bool):
    """A 2-layer config (hidden 64) of ``architecture`` for ``tokenizer``."""
    import transformers

    classes = {
        "llama": ("LlamaConfig", "LlamaForCausalLM"),
        "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
        "gemma": ("GemmaConfig", "GemmaForCausalLM"),
        "gemma2": ("Gemma2Config", "Gemma2ForCausalLM"),
        "phi3": ("Phi3Config", "Phi3ForCausalLM"),
    }
    config_class, model_class = (getattr(transformers, name) for name in classes[architecture])
    config = config_class(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=1024,
        tie_word_embeddings=tied,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return config, model_class


def build_tiny_llm(folder: str, seed: int = 0, architecture: str = "llama", tied: bool = True) -> str:
    """Saves a 2-layer causal LM (hidden 64; Llama by default) and a byte-level BPE tokenizer with a ChatML
    template, trained on real WordNet text."""
    split = demo_split()
    texts = list(split.corpus.values()) + list(split.queries.values())
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHATML
    torch.manual_seed(seed)
    config, model_class = tiny_config(architecture, tokenizer, tied)
    model_class(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory) -> str:
    return build_tiny_llm(str(tmp_path_factory.mktemp("tiny-llm")))


@pytest.fixture(scope="session")
def texts() -> dict[str, list[str]]:
    """Real queries and documents of different lengths, from the shipped WordNet demo task."""
    split = demo_split()
    return {"queries": list(split.queries.values())[:6], "documents": list(split.corpus.values())[:6]}


@pytest.fixture
def tiny_model(tiny_llm) -> SentenceTransformer:
    module = SearchR3(tiny_llm, max_reasoning_tokens=8, max_seq_length=192)
    return SentenceTransformer(modules=[module], similarity_fn_name="cosine")


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    """WordNet fixture splits and mined triplets, laid out as `st_search_r3.data.build` writes them."""
    from tests.test_data import BagOfWords

    splits = wordnet.build(FIXTURES / "wordnet", seed=0, dev_fraction=0.2, test_fraction=0.2)
    root = tmp_path / "data"
    for name, split in splits.items():
        split.save(root / "wordnet" / name)
    guide = BagOfWords(list(splits["train"].corpus.values()) + list(splits["train"].queries.values()))
    mine_hard_negatives(splits["train"], guide, show_progress_bar=False).save_to_disk(
        str(root / "wordnet" / "train_triplets")
    )
    files = {"train/qrels.jsonl": "x", "train_triplets/data-00000-of-00001.arrow": "y"}
    (root / "wordnet" / "manifest.json").write_text(json.dumps({"files": files}))
    return root


@pytest.fixture(scope="session")
def tiny_teacher(tiny_llm, tmp_path_factory) -> str:
    """A saved SentenceTransformer to distil from: random static token embeddings (dim 16) on the tiny tokenizer."""
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding

    torch.manual_seed(0)
    static = StaticEmbedding(Tokenizer.from_file(f"{tiny_llm}/tokenizer.json"), embedding_dim=16)
    folder = str(tmp_path_factory.mktemp("tiny-teacher"))
    SentenceTransformer(modules=[static]).save(folder)
    return folder
