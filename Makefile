# Every target that needs Python builds .venv first, so `make run` and `make test` work on a fresh
# machine. Lambda runs python3.12: prefer a Python 3.12 that runs (a pyenv shim may not), else python3.
PYTHON ?= $(shell for p in python3.12 $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) python3; do \
	$$p -c 'import sys; assert sys.version_info >= (3, 11)' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# aws-sam-cli and checkov pin older boto3 than we do: each gets its own virtual environment.
SAM_VENV := .venv-sam
CHECKOV_VENV := .venv-checkov
SAM_CLI_VERSION := 1.170.0
CHECKOV_VERSION := 3.3.30
PYTEST_ARGS ?=
# The stamps carry the pinned version, so changing a pin reinstalls.
SAM_STAMP := $(SAM_VENV)/.installed-$(SAM_CLI_VERSION)
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

.PHONY: help install run test lint format validate build bench clean docs docs-check faults

help:
	@echo "make run       start the local marketplace (API on 127.0.0.1:3000, PORT overrides)"
	@echo "make test      install what is needed and run every test"
	@echo "make browser-test  the admin console and supplier portal in headless Chromium"
	@echo "make deploy-web STACK=<name>  upload web/ to a deployed stack, write config.json, invalidate"
	@echo "make lint      ruff"
	@echo "make validate  cfn-lint, SAM transform, sam validate --lint, checkov"
	@echo "make build     sam build (functions and the shared layer) into .aws-sam/"
	@echo "make bench     benchmarks"
	@echo "make iam-report  per role, the template's grants the tests used and never used (IAM enforced)"
	@echo "make faults    1,000 onboardings + 1,000 orders under injected faults: nothing lost, duplicated or oversold"
	@echo "make docs      regenerate the generated docs (diagrams, API reference, deploy tables)"
	@echo "make docs-check  fail if a generated doc is out of date with template.yaml or the ASL"
	@echo "make clean     remove virtual environments, build output and local state"

$(STAMP): pyproject.toml layers/shared/requirements.txt requirements-local.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[local,dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/marketplace run

# The browser tests (tests/browser) drive Debian's chromium through Playwright; Playwright's own
# browser download does not work here, so the package is installed when it is missing.
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

# checkov is installed too: the template tests run it (cfn-lint and the SAM transform are in .venv).
# IAM is enforced (D50): each local stack of the run writes what its roles were granted and used, and
# a whole run (no PYTEST_ARGS, not MARKETPLACE_IAM=off) then fails on a grant that no test used and
# iam-reasons.yaml does not explain (the report: .local/iam-report.txt).
IAM_USAGE := .local/iam-usage
IAM_CHECK = $(BIN)/python -m marketplace_local.iam_report --check $(IAM_USAGE) > .local/iam-report.txt
test: $(STAMP) $(CHECKOV_STAMP) $(CHROMIUM)
	rm -rf $(IAM_USAGE)
	MARKETPLACE_IAM_USAGE=$(IAM_USAGE) $(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)
	$(if $(PYTEST_ARGS)$(filter off OFF,$(MARKETPLACE_IAM)),,$(IAM_CHECK))

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium > /dev/null

.PHONY: browser-test
browser-test: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest tests/browser $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# SAM CLI otherwise sends telemetry and looks for a newer version over the network.
SAM := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 $(SAM_VENV)/bin/sam
# `sam build` (no container) runs the Lambda runtime's Python, so a python3.12 must be on PATH.
PY312 = $(firstword $(foreach p,python3.12 $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12),\
	$(shell $(p) -c 'import sys; assert sys.version_info[:2] == (3, 12); print(sys.executable)' 2>/dev/null)))

$(SAM_STAMP):
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli==$(SAM_CLI_VERSION)
	touch $@

$(CHECKOV_STAMP):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $@

# Every check here runs offline and without AWS credentials. cfn-lint leaves an AWS::Include unread,
# so it lints the template a second time with api/openapi.yaml in place (build/template.resolved.json).
# checkov's settings and skips are in .checkov.yaml; it skips a check for the whole template, so the
# template test that holds every other resource to a skipped check runs here too.
validate: $(STAMP) $(SAM_STAMP) $(CHECKOV_STAMP)
	$(BIN)/cfn-lint --append-rules lint/rules -- template.yaml
	@mkdir -p build
	$(BIN)/python -m marketplace_local.template --resolved > build/template.resolved.json
	$(BIN)/cfn-lint --append-rules lint/rules -- build/template.resolved.json
	$(BIN)/python -m marketplace_local.template --transform > /dev/null
	$(SAM) validate --lint --region us-east-1 --template-file template.yaml
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml -f template.yaml
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/template/test_template.py -k checkov_skips

# Builds the functions and the shared layer (arm64 wheels from the package registry) into .aws-sam/.
build: $(STAMP) $(SAM_STAMP)
	@test -n "$(PY312)" || { echo "sam build needs a working python3.12 (the Lambda runtime)"; exit 1; }
	PATH="$(dir $(PY312)):$$PATH" $(SAM) build --template-file template.yaml
	@# the layer's marketplace/schemas is a symlink to schemas/: the build must hold the files
	diff -r schemas .aws-sam/build/SharedLayer/python/marketplace/schemas
	@# sam build rewrites an AWS::Include's Location relative to the built template: it must still resolve
	$(BIN)/python -m marketplace_local.template --template .aws-sam/build/template.yaml --resolved > /dev/null

# After `sam deploy`: uploads web/ to the stack's WebBucket, writes each page's config.json and
# invalidates WebDistribution (AWS credentials and region from the usual environment).
.PHONY: deploy-web
deploy-web: $(STAMP)
	@test -n "$(STACK)" || { echo "usage: make deploy-web STACK=<the stack name given to sam deploy>"; exit 1; }
	$(BIN)/python -m tools.deploy_web --stack-name $(STACK)

bench: $(STAMP)
	$(BIN)/python -m bench

# Least privilege, measured (D50): the tests that run the local stack, with IAM enforced, each stack
# writing what its roles were granted and used; then, per role, every grant used, unused with its
# reason from iam-reasons.yaml, or NEVER USED (which fails, as does any refusal).
IAM_TESTS ?= tests/workflow tests/e2e tests/contract tests/access tests/fault/test_fault_run.py
.PHONY: iam-report
iam-report: $(STAMP)
	rm -rf $(IAM_USAGE)
	-MARKETPLACE_IAM=on MARKETPLACE_IAM_USAGE=$(IAM_USAGE) $(BIN)/python -m pytest -n 2 --dist loadgroup -q -p no:cacheprovider $(IAM_TESTS) $(PYTEST_ARGS)
	$(BIN)/python -m marketplace_local.iam_report --check $(IAM_USAGE)

# 20 % transient Lambda errors, 5 % throttles, 5 % duplicate deliveries, 5 % stream batches crashed
# mid-batch, a webhook receiver down for 20 s (tests.fault.harness). Fails on anything lost,
# duplicated or oversold.
faults: $(STAMP)
	$(BIN)/python -m tests.fault.harness --onboardings 1000 --orders 1000 --transient 0.2 \
		--throttle 0.05 --duplicates 0.05 --crash 0.05 --webhook-down 5 20

# docs/api.md, the state machine diagrams in docs/architecture.md and the tables in docs/deploy.md are
# generated from template.yaml and statemachines/ (tests/tools/test_docs.py runs the check too).
docs: $(STAMP)
	$(BIN)/python -m tools.docgen

docs-check: $(STAMP)
	$(BIN)/python -m tools.docgen --check

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) .aws-sam .local .pytest_cache .ruff_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
