# The two commands:  make demo  (main job)   and   make test  (lint + tests).
# Both create .venv and install everything on first use (scripts/bootstrap.sh);
# later runs skip finished install steps.
VENV ?= .venv
PY := $(VENV)/bin/python
export VENV

.PHONY: install browser lint test demo docs clean-venv

install:
	bash scripts/bootstrap.sh

lint: install
	$(VENV)/bin/ruff check .

# Debian's Chromium for the HTML report's browser test (skipped, with the
# reason, where it cannot be installed).
browser:
	bash scripts/install_browser.sh

test: lint browser
	$(PY) -m pytest tests

demo: install
	PY=$(PY) bash scripts/demo.sh

# The documentation site (docs/en, Sphinx + myst-parser + furo): warnings
# are errors. Open docs/_build/html/index.html.
docs: install
	$(PY) -m sphinx -W --keep-going -b html -d docs/_build/doctrees docs/en docs/_build/html

clean-venv:
	rm -rf $(VENV)
