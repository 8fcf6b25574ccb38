# Two commands matter: `make run` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# extras installed with the project; deploy/Dockerfile installs none (no tests, no linters)
EXTRAS ?= [dev]

.PHONY: install run test lint protos bench checkpoint clean

# pip says what it installs, a line a package ("Collecting ...",
# "Downloading ..."), without progress bars: the install takes minutes (torch,
# Ray, TenSEAL, about 2 GB), and a silent one looks hung
PIP := $(BIN)/pip install --progress-bar off --disable-pip-version-check

$(STAMP): pyproject.toml
	@echo "== creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(PIP) --quiet --upgrade pip
	@echo "== installing Airlock$(EXTRAS) and its dependencies into $(VENV): torch (CPU), Ray, gRPC,"
	@echo "   TenSEAL, numba, sentence-transformers, ... (about 2 GB; several minutes on a first install)"
	$(PIP) -e ".$(EXTRAS)"
	@echo "== installing CrypTen 0.4.1 without its declared dependencies"
	# CrypTen's wheel declares sklearn, torchvision and tensorboard, which it
	# does not import and which do not install here; its real needs are above
	$(PIP) --quiet --no-deps crypten==0.4.1
	touch $(STAMP)
	@echo "== installed: $(VENV)/bin/airlock"

install: $(STAMP)

run: $(STAMP)
	$(BIN)/airlock run $(SCENARIO)

# tests/test_report.py opens a report in headless Chromium, driven through the
# system's chromedriver (nothing is downloaded at test time); installed as root
test: $(STAMP)
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update && apt-get install -y chromium chromium-driver)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy parties protocols orchestrator models evidence

protos: $(STAMP)
	PYTHON=$(BIN)/python scripts/gen_protos.sh

# rebuild the shipped model checkpoint (models/checkpoint/): deterministic, about 16 min
checkpoint: $(STAMP)
	$(BIN)/python -m models.pretrain

bench: $(STAMP)
	$(BIN)/python bench/boundary_throughput.py --run-time
	$(BIN)/python bench/attestation.py
	$(BIN)/python bench/audit.py
	$(BIN)/python bench/federated.py
	$(BIN)/python bench/tee.py --ray
	$(BIN)/python bench/pir.py --rag
	$(BIN)/python bench/mpc.py

clean:
	rm -rf $(VENV) runs .pytest_cache
