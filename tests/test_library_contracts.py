"""The private or unstable library APIs the package relies on: these fail loudly when an upgrade changes them
(pyproject.toml pins the versions below the next minor release)."""

from __future__ import annotations

import inspect


def test_trl_grpo_generate_returns_the_extra_fields_our_trainer_extends():
    from trl import GRPOTrainer

    # SearchR3GRPOTrainer._generate adds each completion's embedding to element 5, the extra fields every
    # reward function receives.
    assert list(inspect.signature(GRPOTrainer._generate).parameters) == ["self", "prompts"]
    returned = inspect.getsource(GRPOTrainer._generate).rsplit("return ", 1)[1].split("\n")[0]
    assert [name.strip() for name in returned.split(",")][:6] == [
        "prompt_ids",
        "completion_ids",
        "tool_mask",
        "completions",
        "logprobs",
        "extra_fields",
    ]
    assert "= self._generate(prompts)" in inspect.getsource(GRPOTrainer._generate_and_score_completions)


def test_mteb_model_registry_is_a_dict_of_model_meta():
    from mteb.models.model_implementations import MODEL_REGISTRY
    from mteb.models.model_meta import ModelMeta

    assert isinstance(MODEL_REGISTRY, dict)
    assert all(isinstance(meta, ModelMeta) for meta in list(MODEL_REGISTRY.values())[:20])


def test_sentence_transformers_input_module_hooks_we_override():
    from sentence_transformers.base.modules import InputModule

    assert {"preprocess", "save", "load", "save_tokenizer", "save_config", "load_config", "load_dir_path"} <= set(
        dir(InputModule)
    )
