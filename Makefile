# The two commands of the README. Each creates .venv (once) with everything it needs.
#   make demo   — the main job: a robot learns objects online from a teacher
#   make test   — lint + the whole test suite (what .ci/run calls)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export PYTHONUNBUFFERED = 1

.PHONY: demo test bench lint clean

$(VENV)/.installed: requirements.txt requirements-interop.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-interop.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/icub-guard demo

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest -q

bench: $(VENV)/.installed   # about 15 minutes on a 2-core CPU (bench_attacks times a default evaluate)
	$(PY) bench/bench_features.py
	$(PY) bench/bench_online.py
	$(PY) bench/bench_guard.py
	$(PY) bench/bench_attacks.py
	$(PY) bench/bench_journal.py
	$(PY) bench/bench_screening.py
	$(PY) bench/bench_startup.py

clean:
	rm -rf $(VENV) build *.egg-info
