from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset
from sentence_transformers import SentenceTransformer

from tests.conftest import run_train_script

ROOT = Path(__file__).parent.parent


def run_rl(model_folder, data, output, *extra):
    return run_train_script(
        "rl.py", "rl_smoke.yaml", "--model", model_folder, "--data_dir", data, "--output_dir", output, *extra
    )


@pytest.mark.slow
def test_smoke_config_runs_two_grpo_steps_with_the_cached_corpus(tiny_model, tiny_data, tmp_path):
    tiny_model.save(str(tmp_path / "search-r3"))
    result = run_rl(tmp_path / "search-r3", tiny_data, tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]

    final = tmp_path / "run" / "final"
    assert (final / "adapter_model.safetensors").is_file()
    record = json.loads((final / "training_record.json").read_text())
    assert record["steps"] == 2
    logged = {key for row in record["log_history"] for key in row}
    assert {"rewards/ranking_reward/mean", "rewards/format_reward/mean", "rewards/length_reward/mean"} <= logged
    assert {"corpus/drift", "dev_ndcg@10", "gain_over_direct"} <= logged
    assert (tmp_path / "run" / "curves.png").is_file()
    # Every checkpoint carries the corpus cache; resuming loads it instead of re-encoding everything.
    cache = tmp_path / "run" / "checkpoint-2" / "corpus_index"
    assert (cache / "vectors.npy").is_file() and json.loads((cache / "state.json").read_text())["last_step"] >= 1

    trained = SentenceTransformer(str(final), trust_remote_code=True)
    embeddings = trained.encode_query(["a wild cat"], reasoning=False)
    assert embeddings.shape == (1, 64) and np.isfinite(embeddings).all()

    resumed = run_rl(tmp_path / "search-r3", tiny_data, tmp_path / "run", "--resume", "true", "--max_steps", "3")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Loaded the corpus cache of" in resumed.stderr and "checkpoint-2" in resumed.stderr
    assert "Encoding the whole corpus" not in resumed.stderr
    assert json.loads((final / "training_record.json").read_text())["steps"] == 3


def grpo_trainer(tiny_model, tmp_path, **settings):
    from trl import GRPOConfig

    from st_search_r3.training.corpus_index import CorpusIndex
    from st_search_r3.training.grpo_trainer import SearchR3GRPOTrainer

    module = tiny_model[0]
    documents = ["a wild cat", "a sponge", "a small boat"]
    corpus = CorpusIndex([0, 1, 2], documents, lambda texts: tiny_model.encode_document(texts))
    prompt = [{"role": "system", "content": module.reasoning_prompt}, {"role": "user", "content": QUERY}]
    args = GRPOConfig(
        output_dir=str(tmp_path),
        num_generations=2,
        per_device_train_batch_size=2,
        max_completion_length=module.max_reasoning_tokens + 1,
        use_cpu=True,
        bf16=False,
        activation_checkpointing=False,
        report_to="none",
        **settings,
    )
    dataset = Dataset.from_dict({"prompt": [prompt] * 2, "relevant_ids": [[0]] * 2})
    return SearchR3GRPOTrainer(tiny_model, corpus, args, dataset, ranking_k=3), corpus, prompt


QUERY = "large feline of the savanna"


def test_completion_embeddings_match_encode_query_with_that_reasoning(tiny_model, tmp_path):
    from st_search_r3.training.reward import dcg_reward

    module = tiny_model[0]
    trainer, corpus, prompt = grpo_trainer(tiny_model, tmp_path)
    reward = trainer.ranking
    assert trainer.reward_func_names[0] == "ranking_reward"
    # The reward embeds from the module's own prompt ids: TRL renders the chat prompt to exactly those, so the
    # rewards equal those of embedding TRL's own prompt ids (a contract with TRL's tokenization, checked here).
    prompt_ids = trainer._tokenize_prompts([prompt])[0][0]
    assert list(prompt_ids) == module.query_prompt_ids(QUERY)

    reasoning_ids = module.prompts.encode("big cat, lion")
    completions = [reasoning_ids + [module.embed_token_id], reasoning_ids + [module.tokenizer.eos_token_id]]
    vectors = reward.embed_completions([QUERY, QUERY], completions)
    expected = tiny_model.encode_query([(QUERY, "big cat, lion")])
    np.testing.assert_allclose(vectors, np.repeat(expected, 2, axis=0), atol=1e-5)

    state = type("State", (), {"global_step": 0})()
    logged = {}
    rewards = reward([prompt] * 2, completions, [[0], [1]], trainer_state=state, log_metric=logged.__setitem__)
    # The cache was built on first use; with k = the corpus size every relevant document is ranked.
    _, ranked = corpus.search(vectors, 3)
    assert rewards == [dcg_reward(ranked[0].tolist(), [0], 3), dcg_reward(ranked[1].tolist(), [1], 3)]
    assert min(rewards) >= 0.5 and logged["corpus/rebuilt"] == 1.0
    assert trainer.format_reward(None, completions) == [1.0, 0.0]

    # A completion that stops at once takes the direct vector, as reasoning="auto" does; it costs no length.
    module.matmul_precision = "float32"
    direct = reward.direct_embeddings([QUERY, QUERY])
    np.testing.assert_allclose(direct, tiny_model.encode_query([QUERY, QUERY], reasoning=False), atol=1e-5)
    at_once = [[module.embed_token_id], completions[0]]
    mixed = reward.embed_completions([QUERY, QUERY], at_once, direct)
    np.testing.assert_allclose(mixed, np.concatenate([direct[:1], expected]), atol=1e-5)
    assert trainer.length_reward(None, at_once) == [0.0, -len(reasoning_ids) / module.max_reasoning_tokens]
    logged = {}
    reward([prompt] * 2, at_once, [[0], [0]], trainer_state=state, log_metric=logged.__setitem__)
    gain = np.mean(reward.ndcg(mixed, [[0], [0]])) - np.mean(reward.ndcg(direct, [[0], [0]]))
    assert logged["gain_over_direct"] == pytest.approx(gain)

    module.fuse_direct_embedding = True  # rewarded as inference embeds a fused query
    fused = reward.embed_completions([QUERY, QUERY], at_once, direct)
    np.testing.assert_allclose(fused[1:], tiny_model.encode_query([(QUERY, "big cat, lion")]), atol=1e-5)
    np.testing.assert_allclose(fused[:1], direct[:1], atol=1e-5)
    module.fuse_direct_embedding = False


def test_the_trainer_overrides_no_method_of_trl_or_transformers():
    from trl import GRPOTrainer

    from st_search_r3.training.grpo_trainer import SearchR3GRPOTrainer

    inherited = {name for klass in GRPOTrainer.__mro__ for name in vars(klass)}
    assert not inherited & (set(vars(SearchR3GRPOTrainer)) - {"__init__", "__doc__", "__module__", "__qualname__"})


def test_a_vllm_configuration_reaches_trls_own_check(tiny_model, tmp_path):
    """With vLLM absent, use_vllm=True fails in TRL's construction with TRL's message, not in ours."""
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        trainer, _, _ = grpo_trainer(tiny_model, tmp_path, use_vllm=True, vllm_mode="colocate")
        assert trainer.use_vllm
        return
    with pytest.raises(ImportError, match="vLLM"):
        grpo_trainer(tiny_model, tmp_path, use_vllm=True, vllm_mode="colocate")


def test_without_config_the_scripts_read_their_cpu_default():
    from sentence_transformers import SentenceTransformerTrainingArguments
    from trl import GRPOConfig

    from st_search_r3.training.config import SearchR3RLConfig, SearchR3SFTConfig, parse_config

    config, args = parse_config((SearchR3RLConfig, GRPOConfig), ROOT / "train/configs/rl.yaml", "", argv=[])
    assert args.use_cpu and not args.bf16 and config.model == "runs/sft_info/final", "the recipe's stage-1 model"
    config, args = parse_config(
        (SearchR3SFTConfig, SentenceTransformerTrainingArguments),
        ROOT / "train/configs/sft_all.yaml",
        "",
        argv=["--lora_r", "4"],
    )
    assert args.use_cpu and config.lora_r == 4 and config.sources == SearchR3SFTConfig().sources


@pytest.mark.slow
def test_rl_takes_its_environment_from_a_beir_folder(tiny_model, tiny_data, tmp_path):
    from st_search_r3.data.beir import save_beir
    from st_search_r3.data.retrieval_split import RetrievalSplit

    tiny_model.save(str(tmp_path / "model"))
    splits = {name: RetrievalSplit.load(tiny_data / "wordnet" / name) for name in ("train", "dev")}
    save_beir(tmp_path / "beir", splits)
    extra = ["--train_data", tmp_path / "beir", "--eval_data", tmp_path / "beir", "--max_steps", "1"]
    result = run_rl(tmp_path / "model", tmp_path / "no-built-data", tmp_path / "run", *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "run" / "final" / "training_record.json").read_text())
    assert record["config"]["train_data"] == str(tmp_path / "beir") and record["steps"] == 1
    assert any("dev_ndcg@10" in row for row in record["log_history"])


@pytest.mark.parametrize("name", ["sft_qwen2.5-1.5b.yaml", "rl_qwen2.5-1.5b.yaml"])
def test_gpu_configs_name_only_real_fields_and_ask_for_bf16(name):
    """TrainingArguments refuses bf16 without a GPU, so the configs are checked field by field here."""
    import dataclasses

    import yaml
    from sentence_transformers import SentenceTransformerTrainingArguments
    from trl import GRPOConfig

    from st_search_r3.training.config import SearchR3RLConfig, SearchR3SFTConfig

    ours, trainer = (
        (SearchR3RLConfig, GRPOConfig)
        if name.startswith("rl")
        else (SearchR3SFTConfig, SentenceTransformerTrainingArguments)
    )
    config = yaml.safe_load((ROOT / "train" / "configs" / "gpu" / name).read_text())
    fields = {kind: {field.name for field in dataclasses.fields(kind)} for kind in (ours, trainer)}
    assert set(config) <= fields[ours] | fields[trainer], set(config) - fields[ours] - fields[trainer]
    assert config["bf16"] and config["activation_checkpointing"] and not config.get("use_cpu")
    settings = ours(**{key: value for key, value in config.items() if key in fields[ours]})
    if name.startswith("rl"):
        assert config["use_vllm"] and config["max_completion_length"] == 129
    else:
        assert settings.base_model == "Qwen/Qwen2.5-1.5B-Instruct" and settings.attn_implementation == "sdpa"


def test_gpu_smoke_says_so_where_there_is_no_gpu():
    import os

    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_smoke.py")], capture_output=True, text=True, env=env
    )
    assert result.returncode == 2 and "No CUDA device here" in result.stdout
