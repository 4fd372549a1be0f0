# Integrator Portal — the two commands: `make run` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
export PORT

.PHONY: install run run-prod-like test test-fast bench bench-quick proof lint check-deploy clean

$(BIN)/.installed: requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $@

install: $(BIN)/.installed

# The portal with its sandbox and demo data: web + worker + beat on 127.0.0.1:$(PORT). Ctrl-C stops all.
run: export SANDBOX ?= 1
run: install
	@$(BIN)/python scripts/preflight.py
	@$(BIN)/python manage.py migrate --noinput -v 0
	@$(BIN)/python manage.py setup_periodic_tasks
	@$(BIN)/python manage.py demo_setup
	@if [ "$$SANDBOX" = "1" ] || [ "$$SANDBOX" = "true" ]; then $(BIN)/python manage.py sandbox_seed; fi
	@$(BIN)/python manage.py collectstatic --noinput -v 0
	@echo "Portal: http://127.0.0.1:$(PORT)/admin/   API docs: http://127.0.0.1:$(PORT)/api/docs/   Health: http://127.0.0.1:$(PORT)/health/"
	@# honcho gives each process its own PORT; the workers must still reach the web process.
	@PORTAL_BASE_URL=http://127.0.0.1:$(PORT) exec $(BIN)/honcho -f Procfile.dev start

# The whole suite. With DATABASE_URL=postgres://… and CELERY_BROKER_URL=redis://… it also runs
# the tests that need a real database and broker (CI does).
test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .

check-deploy: install
	DEBUG=0 HTTPS=1 SECRET_KEY=$$($(BIN)/python -c 'import secrets;print(secrets.token_urlsafe(64))') \
	  ALLOWED_HOSTS=portal.example.com $(BIN)/python manage.py check --deploy --fail-level WARNING

# Every benchmark at full size on PostgreSQL (DATABASE_URL), then the README table.
bench: install
	@for b in bench/[a-z]*.py; do case $$b in bench/common.py|bench/report.py|bench/__init__.py) continue;; esac; \
	  echo "== $$b"; $(BIN)/python $$b || exit 1; done
	$(BIN)/python bench/report.py

bench-quick: install
	@for b in bench/[a-z]*.py; do case $$b in bench/common.py|bench/report.py|bench/__init__.py) continue;; esac; \
	  echo "== $$b --quick"; $(BIN)/python $$b --quick || exit 1; done

clean:
	rm -rf var .pytest_cache

# deploy/Procfile's processes (gunicorn, 2 Celery workers, one beat) on PostgreSQL + Redis,
# locally; DATABASE_URL / CELERY_BROKER_URL default to the local servers (scripts/prod_like.sh).
run-prod-like: install
	@scripts/prod_like.sh

# The whole reliability campaign (README, "Reliability and performance"): hostile input at full size, load and
# faults on a production-like stack of its own (own Redis, own `portal_proof` database), then
# the figures table. Needs PostgreSQL at PROOF_PG_URL (default postgres://postgres@127.0.0.1:5432).
# Every step runs even if an earlier one fails (the figures are wanted either way); the
# target fails at the end if any step did.
proof: install
	@scripts/install-load-tools.sh || echo "proof: wrk could not be installed; reads are driven by Python threads"
	@status=0; \
	SCHEMATHESIS_EXAMPLES=100 FUZZ_EXAMPLES=200 $(BIN)/pytest tests/security || status=1; \
	$(BIN)/python proof/load.py || status=1; \
	$(BIN)/python proof/faults.py || status=1; \
	$(BIN)/python bench/report.py || status=1; \
	exit $$status
