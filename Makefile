# One entry point for people and CI. Everything installs into .venv; torch is installed first
# and the extension is built against it with --no-build-isolation.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# On the project's machines this is a local CPU wheel; elsewhere pick the build you want,
# e.g. make test TORCH="torch --index-url https://download.pytorch.org/whl/cpu"
TORCH ?= torch==2.13.0

.PHONY: setup build test demo bench gpu-check clean

$(VENV)/.deps: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja numpy \
		"pytest>=7" "pytest-benchmark>=4" "monai>=1.3" "nibabel>=4" "tqdm>=4.60" scipy matplotlib
	# the optional SyN/elastix baselines: their tests skip (with the reason) where no wheel exists
	$(PY) -m pip install -q "antspyx>=0.5" "itk-elastix>=0.20" || echo "motionext: baselines not installed; their tests will skip"
	touch $@

setup: $(VENV)/.deps

build: setup
	$(PY) -m pip install -q --no-build-isolation .

test: build
	cd tests && MOTIONEXT_REQUIRE_COMPILED=1 ../$(PY) -m pytest -q -p no:cacheprovider .

# The main job: the pretrained model on the embedded data (outputs in ./motionext-demo).
demo: build
	$(VENV)/bin/motionext demo --out motionext-demo

# Compiled kernels vs the pure-PyTorch layers, side by side; then the pytest-benchmark suite.
bench: build
	$(PY) benchmarks/compare.py --fields noise model
	$(PY) -m pytest benchmarks -q --benchmark-columns=median,iqr,ops --benchmark-sort=name

# On a lent GPU (no .venv there: its python3 has torch): build the CUDA kernels, run the CUDA
# tests, memcheck, compare.py, a bf16 training and throughput.py; figures in gpu-check/gpu_check.md.
gpu-check:
	bash benchmarks/gpu_check.sh gpu-check

clean:
	rm -rf build dist *.egg-info .pytest_cache
