# The two commands:  make demo  (main job)   and   make test  (test suite).
# Both create .venv and install everything on first use (scripts/bootstrap.sh);
# later runs skip finished install steps.
VENV ?= .venv
PY := $(VENV)/bin/python
export VENV

.PHONY: install test demo clean-venv

install:
	bash scripts/bootstrap.sh

test: install
	$(PY) -m pytest tests

demo: install
	PY=$(PY) bash scripts/demo.sh

clean-venv:
	rm -rf $(VENV)
