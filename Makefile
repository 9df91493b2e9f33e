# The two commands:  make demo  (main job)   and   make test  (lint + tests).
# Both create .venv and install everything on first use (scripts/bootstrap.sh);
# later runs skip finished install steps.
VENV ?= .venv
PY := $(VENV)/bin/python
export VENV

.PHONY: install lint test demo clean-venv

install:
	bash scripts/bootstrap.sh

lint: install
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest tests

demo: install
	PY=$(PY) bash scripts/demo.sh

clean-venv:
	rm -rf $(VENV)
