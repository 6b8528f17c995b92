# One entry point for people and CI. `make test` sets everything up from a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Python 3.13 (the Lambda runtime): python3.13 on PATH, else pyenv's 3.13.
PYTHON313 := $(shell \
	if PYENV_VERSION=3.13 python3.13 -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then echo "env PYENV_VERSION=3.13 python3.13"; \
	elif command -v pyenv >/dev/null && [ -x "$$(pyenv root)/versions/$$(pyenv versions --bare 2>/dev/null | grep -E '^3\.13(\.|$$)' | tail -n1)/bin/python" ]; then echo "$$(pyenv root)/versions/$$(pyenv versions --bare | grep -E '^3\.13(\.|$$)' | tail -n1)/bin/python"; \
	elif [ -x "$$HOME/.pyenv/versions/3.13.0/bin/python" ]; then echo "$$HOME/.pyenv/versions/3.13.0/bin/python"; fi)

.PHONY: help setup check test lint format bench db clean sam-validate sam-build

help:
	@echo "make run     the whole API on 127.0.0.1:\$$PORT (default 3000) with the expiry schedule, Swagger UI at /docs"
	@echo "make check   lint and the tests that need neither a server nor Docker, but the slowest modules (tests/conftest.py SLOW), under 2 minutes"
	@echo "make test    create .venv (Python 3.13), install pinned tools, run ruff and the whole test suite"
	@echo "make bench   round trips, ops/s beside bare-pymongo floors, 1-8 threads with write conflicts, journal pages, expiry, events, then five operations near-empty and at 30,000 wallets / 200,000 ledger documents (SCALE=large: also 100,000 / 1,000,000; SCALE=none: not)"
	@echo "make fuzz    Schemathesis fuzzing of make run's server from openapi.json, longer than make test's (FUZZ_SECONDS=240 per token, FUZZ_SEED)"
	@echo "make soak    the bank workload, plain and through faults, a step-down and a crash, bigger than make test's (SOAK_OWNERS=12 SOAK_CLIENTS=12 SOAK_OPERATIONS=400)"
	@echo "make load    HTTP load on make run's server: req/s, p50/p95/p99 and errors per route, then at 1,2,4,8 client threads with write conflicts (LOAD_DURATION=30 LOAD_CONCURRENCY=8 LOAD_WALLETS=16 LOAD_THREADS_SWEEP=1,2,4,8, BASE_URL)"
	@echo "make db      the embedded database (SecantusDB, data in .local/db or DB_PATH) on 127.0.0.1:\$$PORT (default 27017), with its URI"
	@echo "make format  apply ruff's formatting and safe fixes"
	@echo "make sam-validate  sam validate --lint (cfn-lint) on template.yaml"
	@echo "make sam-build     sam build of the layer and every function into .aws-sam/ (SAM_ARCH=x86_64 or arm64)"
	@echo "make invoke FN=CreateWallet EVENT=events/create_wallet.json  one function, one event, in a local container (no Docker)"
	@echo "make sam-invoke FN=Deposit EVENT=events/deposit.json  sam build + sam local invoke in a Lambda container"
	@echo "make sam-api       sam build + sam local start-api --warm-containers EAGER on 127.0.0.1:\$$PORT (default 3000)"
	@echo "make openapi       regenerate openapi.json from the handlers' routes (tests fail while it is stale)"
	@echo "make template-alarms  regenerate template.yaml's per-function Errors and Throttles alarms (tests fail while stale)"
	@echo "make importtime    cold start of every function: import, init (client, connection, indexes), first call; median of 5 fresh processes"
	@echo "make shard-plan  the shard keys as JSON, then the mongosh commands of a sharded cluster (SHARDS zones, default 4)"
	@echo "make demo    the wallet's story against the running local API (BASE_URL, default http://127.0.0.1:\$$PORT or 3000)"
	@echo "make audit   prove the ledger of make run's database: zero-sum per currency, wallets, holds (exit 1 on a discrepancy)"
	@echo "make migrate bring a single-entry ledger over to double entry (idempotent)"
	@echo "make token SUB=alice [SCOPES=wallet:admin]  a bearer token for the local API"

$(STAMP): requirements-dev.txt layers/wallet/requirements.txt layers/wallet/pyproject.toml
	@if [ -z "$(PYTHON313)" ]; then echo "error: Python 3.13 not found: put python3.13 on PATH or install it with 'pyenv install 3.13'" >&2; exit 1; fi
	@if [ ! -x "$(PY)" ] || ! $(PY) -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then rm -rf $(VENV) && $(PYTHON313) -m venv $(VENV); fi
	@# uv installs the same pinned set as pip, with its bytecode, in ~20 s (pip took ~110 s here).
	@# Bytecode now or never: with PYTHONDONTWRITEBYTECODE set (as on this machine) every process
	@# would compile every module it imports, every time (make test took minutes longer).
	$(PY) -m pip install --quiet --disable-pip-version-check uv==0.13.10
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -r requirements-dev.txt
	@touch $(STAMP)

setup: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The fast loop: lint and every test but tests/e2e (HTTP servers) and tests/sam (Docker).
check: lint
	$(PY) -m pytest -m "not e2e and not sam and not slow" -q -n 3

# The tests that need neither an HTTP server nor Docker across 3 processes (make check's and the slow ones); then the
# e2e and the SAM tests side by side, each group one test at a time (they start servers and
# containers) in a pytest process of its own, the OpenAPI fuzzing (the longest e2e module, mostly
# CPU) with the SAM tests (mostly waiting on Docker), so that both groups end about together (xdist groups split modules across workers, and two
# make-run servers met on .local/db). Each has its own pytest temp folder, free ports, embedded
# databases and DB_PATH (make run's database and events file); the development key is made first, as
# both would make it. Each logs to a file (to tail -f meanwhile), printed when both have ended;
# either failing fails make test. set -m makes each a job of its own (a plain background job ignores
# SIGINT), and the trap passes Ctrl-C on once, so each stops its servers as in the foreground. With
# MONGODB_URI both would share one server, where the e2e workloads step down the primary, arm
# failpoints on the service's connections (SAM's containers' too) and kill all sessions: there they
# run one after the other. No `make sam-build` first: the SAM tests build into a folder of their own.
FUZZ_TESTS := tests/e2e/workload/test_fuzz_openapi.py
test: lint sam-validate
	@# The project's own bytecode too (the layer is installed editable): hundreds of containers and
	@# servers import it, each compiling it again while PYTHONDONTWRITEBYTECODE is set.
	$(PY) -m compileall -q layers functions devtools tests benchmarks
	$(PY) -m pytest -m "not e2e and not sam" -n 3
	@if [ -n "$$MONGODB_URI" ]; then exec $(PY) -m pytest -m "e2e or sam"; fi; \
	$(PY) -c 'from devtools.local_auth import signing_key; signing_key()'; \
	run=$$(mktemp -d "$${TMPDIR:-/tmp}/wallet-make-test.XXXXXX"); \
	echo "e2e tests, and SAM tests then the fuzzing, side by side, each one test at a time; logs: $$run/e2e.log, $$run/sam.log"; \
	set -m; \
	DB_PATH=$$run/e2e/db $(PY) -m pytest -m e2e --ignore=$(FUZZ_TESTS) --durations=12 </dev/null >$$run/e2e.log 2>&1 & e2e=$$!; \
	DB_PATH=$$run/sam/db $(PY) -m pytest tests/sam $(FUZZ_TESTS) --durations=8 </dev/null >$$run/sam.log 2>&1 & sam=$$!; \
	set +m; \
	trap 'kill -INT $$e2e $$sam 2>/dev/null' INT TERM; \
	ended() { wait $$1; local code=$$?; while kill -0 $$1 2>/dev/null; do wait $$1; code=$$?; done; return $$code; }; \
	ended $$e2e; e2e_code=$$?; ended $$sam; sam_code=$$?; \
	for group in e2e sam; do echo; echo "===== make test: the $$group tests ====="; cat $$run/$$group.log; done; \
	echo; echo "make test: e2e tests exit $$e2e_code, SAM tests and fuzzing exit $$sam_code"; \
	rm -rf $$run; \
	[ $$e2e_code -eq 0 ] && [ $$sam_code -eq 0 ]

# The SAM CLI from the venv, telemetry off. sam-build puts the venv first on PATH so that SAM's
# python3.13 workflow builds with the venv's Python 3.13 (the Lambda runtime's version) whatever
# else is installed. No Docker: SAM's pip workflow downloads manylinux wheels for the target
# architecture from the package index, so both SAM_ARCH=x86_64 (the default here, matching
# samconfig's dev stack) and SAM_ARCH=arm64 (the template default, used by prod) build on an
# x86_64 host with no AWS access; every dependency in layers/wallet/requirements.txt
# ships wheels for both. `sam build` also reuses .aws-sam/cache (samconfig: cached, parallel).
SAM_ARCH ?= x86_64

sam-validate: $(STAMP)
	SAM_CLI_TELEMETRY=0 $(VENV)/bin/sam validate --lint

sam-build: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" SAM_CLI_TELEMETRY=0 $(VENV)/bin/sam build --parameter-overrides Architecture=$(SAM_ARCH)
	@# Lambda's file system is read-only: ship bytecode, or every cold start compiles every module
	@# (measured ~1.2 s instead of ~0.4 s per function). unchecked-hash survives the zip's timestamps.
	$(PY) -m compileall -q --invalidation-mode unchecked-hash .aws-sam/build

# The database grown for the scale measurement (benchmarks/scale.py): default, large or none.
SCALE ?= default
bench: $(STAMP)
	$(PY) -m benchmarks --scale $(SCALE)

# HTTP load on make run's server started for the run (or BASE_URL's API): LOAD_DURATION seconds
# (30), LOAD_CONCURRENCY client threads (8), LOAD_WALLETS wallets (16); a Markdown table on stdout,
# then a run at each of LOAD_THREADS_SWEEP's client thread counts, with the write conflicts the
# service's containers received from the database (the --concurrency run is one of them).
LOAD_THREADS_SWEEP ?= 1,2,4,8
load: $(STAMP)
	$(PY) -m benchmarks.http_load --threads-sweep "$(LOAD_THREADS_SWEEP)"

.PHONY: load

# Schema-driven fuzzing (tests/e2e/workload/test_fuzz_openapi.py, Schemathesis from openapi.json) for
# longer than make test's bounded run: FUZZ_SECONDS per token (owner, admin), a new seed each time
# (printed; FUZZ_SEED=<it> replays a run), FUZZ_MAX_EXAMPLES per operation and phase.
FUZZ_SECONDS ?= 240
FUZZ_SEED ?= random
FUZZ_MAX_EXAMPLES ?= 200
fuzz: $(STAMP)
	FUZZ_MAX_SECONDS=$(FUZZ_SECONDS) FUZZ_SEED=$(FUZZ_SEED) FUZZ_MAX_EXAMPLES=$(FUZZ_MAX_EXAMPLES) \
		$(PY) -m pytest tests/e2e/workload/test_fuzz_openapi.py -q -s -p no:cacheprovider

.PHONY: fuzz

# The bank workload (tests/e2e/workload/test_bank_workload.py: plain, and through failpoint faults, a
# step-down and a kill -9 of the database) at a larger size than make test's: SOAK_OWNERS owners with a wallet per
# currency, SOAK_CLIENTS concurrent clients, SOAK_OPERATIONS each; WORKLOAD_SEED=<printed> replays;
# WORKLOAD_FAULT_PAUSE=low,high sets the seconds between two faults (default 0.02,0.1).
SOAK_OWNERS ?= 12
SOAK_CLIENTS ?= 12
SOAK_OPERATIONS ?= 400
soak: $(STAMP)
	WORKLOAD_OWNERS=$(SOAK_OWNERS) WORKLOAD_CLIENTS=$(SOAK_CLIENTS) WORKLOAD_OPERATIONS=$(SOAK_OPERATIONS) \
		$(PY) -m pytest tests/e2e/workload/test_bank_workload.py -q -s -p no:cacheprovider --timeout 3600

.PHONY: soak

db: $(STAMP)
	@$(PY) -m devtools.embedded_mongo

.PHONY: openapi importtime

openapi: $(STAMP)
	$(PY) -m devtools.openapi --write

# The block between template.yaml's function-alarm markers, from devtools/function_alarms.py's spec.
.PHONY: template-alarms
template-alarms: $(STAMP)
	$(PY) -m devtools.function_alarms --write

importtime: $(STAMP)
	$(PY) -m devtools.importtime

.PHONY: shard-plan
# The shard keys as JSON, then the mongosh commands of a sharded cluster (SHARDS zones, default 4).
shard-plan: $(STAMP)
	@$(PY) -m devtools.shard_plan

.PHONY: demo token

# The story of the original design, told against `make run` (start that first).
demo: $(STAMP)
	@$(PY) -m devtools.demo

# A development token for the local API: make token SUB=alice [SCOPES=wallet:admin]
token: $(STAMP)
	@if [ -z "$(SUB)" ]; then echo "error: say whose token: make token SUB=alice [SCOPES=wallet:admin]" >&2; exit 2; fi
	@$(PY) -m devtools.local_auth --sub "$(SUB)" --scopes "$(SCOPES)"

# The whole API on 127.0.0.1:$PORT (default 3000), in-process, with the expiry schedule running;
# the embedded database (data kept in .local/db, or DB_PATH; DB_PATH=:memory: for a throwaway one)
# unless MONGODB_URI is set. EXPIRY_INTERVAL_SECONDS shortens the schedule.
run: $(STAMP)
	@$(PY) -m devtools.local_api run

# One function, one event, printed as `sam local invoke` prints it: make invoke FN=CreateWallet EVENT=events/create_wallet.json
invoke: $(STAMP)
	@if [ -z "$(FN)" ] || [ -z "$(EVENT)" ]; then echo "usage: make invoke FN=CreateWallet EVENT=events/create_wallet.json" >&2; exit 2; fi
	@$(PY) -m devtools.local_api invoke $(FN) $(EVENT)

.PHONY: run invoke

# The ledger jobs against make run's database (or MONGODB_URI): the audit (exit 1 on any
# discrepancy) and the one-off, idempotent migration of a single-entry ledger to double entry.
audit: $(STAMP)
	@$(PY) -m devtools.ledger audit

migrate: $(STAMP)
	@$(PY) -m devtools.ledger migrate

.PHONY: audit migrate

# The real SAM CLI path (devtools/sam_local.py): sam build, then the functions in Lambda containers
# with `sam local`, on a Docker engine (a running one, else Debian's dockerd installed and started
# here as root, and stopped on exit), the python3.13 base image (devtools/lambda_image.py: the
# official one where the registry answers, else an offline stand-in) and the database on the Docker
# bridge's gateway address. The architecture is this machine's unless SAM_ARCH is given.
sam-invoke: $(STAMP)
	@if [ -z "$(FN)" ] || [ -z "$(EVENT)" ]; then echo "usage: make sam-invoke FN=Deposit EVENT=events/deposit.json" >&2; exit 2; fi
	@$(PY) -m devtools.sam_local invoke $(FN) $(EVENT)

# sam local start-api --warm-containers EAGER on 127.0.0.1:$PORT (default 3000), with the JWT check
# and the expiry schedule that SAM CLI does not emulate (EXPIRY_INTERVAL_SECONDS shortens it).
sam-api: $(STAMP)
	@$(PY) -m devtools.sam_local api

.PHONY: sam-invoke sam-api

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .aws-sam
