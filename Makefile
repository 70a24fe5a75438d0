# shoprank: `make demo` and `make test` each work on a fresh machine (they run `setup` first).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-stamp
SCALE  ?= seed

PORT   ?= 3000

.PHONY: setup demo serve bento bento-requirements compose-config docker test test-code test-data test-model test-integration lint format bench bench-serving docs clean

setup: $(STAMP)

# Idempotent: re-runs only when pyproject.toml or the lock file changes.
# torch is installed first and exactly (2.13.0, the CPU build): any other request pulls CUDA.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip wheel
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/shoprank pipeline --scale $(SCALE)
	BENTOML_DO_NOT_TRACK=true $(BIN)/shoprank evaluate

# Serves the newest saved ranker, pinned by its exact tag (set SHOPRANK_MODEL_TAG to choose).
serve: setup
	tag=$${SHOPRANK_MODEL_TAG:-$$($(BIN)/shoprank models --latest)} && echo "serving $$tag" && \
		SHOPRANK_MODEL_TAG=$$tag BENTOML_DO_NOT_TRACK=true $(BIN)/bentoml serve \
		bentos/recommender/service.py:Recommender --host 127.0.0.1 --port $(PORT)

# The recommender bento (bentos/recommender/bentofile.yaml) in BentoML's store: the service,
# shoprank's source and its locked requirements, no model (SHOPRANK_MODEL_TAG picks the tag
# when it is served). Packages nothing from the network; `bentoml containerize` makes an image.
bento: setup
	$(BIN)/python bentos/serving_requirements.py --check
	BENTOML_DO_NOT_TRACK=true $(BIN)/bentoml build -f bentos/recommender/bentofile.yaml .

# Rewrites the bento's requirements after requirements.lock or pyproject.toml changed.
bento-requirements: setup
	$(BIN)/python bentos/serving_requirements.py

# Validates bentos/docker-compose.yml with the Compose CLI (no daemon needed).
compose-config: setup
	$(BIN)/docker-compose -f bentos/docker-compose.yml config --quiet

# The image (bentos/Dockerfile). Needs a Docker daemon and the python:3.11-slim base image:
# neither exists on the project's machines, so this target is for a machine that has them.
docker:
	docker build -f bentos/Dockerfile -t shoprank-recommender .

# Tests run in pipeline order: code, data contracts, model behaviour, real servers
# (folders that exist; tests/model arrives with the ranker).
TEST_DIRS := $(wildcard tests/code tests/data tests/model tests/integration)
test: setup
	BENTOML_DO_NOT_TRACK=true $(BIN)/python -m pytest $(TEST_DIRS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# sqlfluff's dbt templater opens a warehouse: give it a throwaway one.
	scratch=$$(mktemp -d) && SHOPRANK_DATA_DIR=$$scratch $(BIN)/sqlfluff lint dbt_project/models dbt_project/tests; \
		status=$$?; rm -rf $$scratch; exit $$status

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/shoprank bench pipeline --scale $(SCALE)

# The service (newest saved ranker, or SHOPRANK_MODEL_TAG) under open-loop load, and the
# BentoML floor: reports/bench_serving.json. BENCH_ARGS passes options, e.g. --quick.
bench-serving: setup
	BENTOML_DO_NOT_TRACK=true $(BIN)/shoprank bench serving $(BENCH_ARGS)

docs: setup
	$(BIN)/shoprank dbt docs

clean:
	rm -rf data reports/*.json dbt_project/target dbt_project/logs
