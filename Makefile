# Motcua: the two commands.
#   make run   installs what is missing, starts RabbitMQ, the database and the four services.
#   make test  installs what is missing, then ruff, mypy and the whole pytest suite.
.PHONY: run test deps lint typecheck pytest schemas bench bench-databases fuzz chaos clean backup restore

VENV_PY := .venv/bin/python
PYTEST_ARGS ?=

deps:
	@scripts/provision.sh

run: deps
	@$(VENV_PY) -m tools.devstack run

lint: deps
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck: deps
	.venv/bin/mypy shared services tools tests benchmarks

pytest: deps
	$(VENV_PY) -m tools.devstack exec -- $(VENV_PY) -m pytest $(PYTEST_ARGS)

test: deps lint typecheck pytest

# A backup of the four services' databases (MOTCUA_MONGODB_URL, MOTCUA_DATABASE_PREFIX: by
# default `make run`'s), and its restore into empty databases (FORCE=1 drops them first).
# docs/operations.md, "Backup and restore".
BACKUP_DIR ?= backups/$(shell date -u +%Y%m%dT%H%M%SZ)
backup: deps
	$(VENV_PY) -m tools.backup dump --out $(BACKUP_DIR)

restore: deps
	@test -n "$(FROM)" || { echo "make restore FROM=backups/<folder> [FORCE=1]"; exit 2; }
	$(VENV_PY) -m tools.backup restore --from $(FROM) $(if $(FORCE),--force)

bench: deps
	$(VENV_PY) -m benchmarks.end_to_end --count 300 --concurrency 50 --timeout 900
	$(VENV_PY) -m benchmarks.intake_submissions
	$(VENV_PY) -m benchmarks.audit_batching
	$(VENV_PY) -m benchmarks.notify_deliveries

# The embedded database candidates compared by one script (README: "Choosing the embedded
# database"); installs every candidate first. DATABASES_ARGS="--sizes 1000,30000" to shorten.
DATABASES_ARGS ?=
bench-databases:
	@MOTCUA_PROVISION_ALL_DATABASES=1 scripts/provision.sh
	$(VENV_PY) -m benchmarks.databases $(DATABASES_ARGS)

# The OpenAPI fuzz run of every service (tests/e2e/test_fuzz.py) with more examples than the
# suite's short one; FUZZ_EXAMPLES examples per operation and token.
FUZZ_EXAMPLES ?= 100
fuzz: deps
	MOTCUA_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(VENV_PY) -m tools.devstack exec -- \
		$(VENV_PY) -m pytest -q tests/e2e/test_fuzz.py

# Faults under load (benchmarks/chaos.py): a 3-node RabbitMQ cluster, two replicas of every
# service, each replica killed in turn, the queues' leading node stopped, the database restarted;
# about 10 minutes. CHAOS_ARGS="--faults kill:review,broker --phase-seconds 20" to shorten.
CHAOS_ARGS ?=
chaos: deps
	$(VENV_PY) -m benchmarks.chaos --timeout 900 $(CHAOS_ARGS)

schemas: deps
	$(VENV_PY) -m shared.contracts schemas docs/events

clean:
	rm -rf .run
