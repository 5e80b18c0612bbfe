# The two commands of the README. Each creates .venv (once) with everything it needs.
#   make demo   — the main job: a robot learns objects online from a teacher
#   make test   — lint + the whole test suite (what .ci/run calls)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export PYTHONUNBUFFERED = 1

.PHONY: demo test test-browser bench bench-secml lint clean msgs

$(VENV)/.installed: requirements.txt requirements-interop.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-interop.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# The interface package icub_guard_msgs, built with the ROS wheels of requirements.txt and installed into the
# venv (its Python module in site-packages, its libraries in $(VENV)/lib, which rclpy's wheels already put on
# the library path): no ROS install. cmake alone, not colcon (colcon's wheels would bring pytest plugins and
# an older setuptools into the venv). pip_wheels.cmake points the message wheels' include folders at this
# interpreter's. On a ROS install, `colcon build` builds it like any package.
MSGS_SRC := $(wildcard icub_guard_msgs/CMakeLists.txt icub_guard_msgs/package.xml icub_guard_msgs/cmake/*.cmake \
  icub_guard_msgs/msg/*.msg icub_guard_msgs/srv/*.srv)
MSGS_BUILD ?= build/icub_guard_msgs
$(VENV)/.msgs: $(VENV)/.installed $(MSGS_SRC)
	rm -rf $(MSGS_BUILD)
	@echo "building icub_guard_msgs (about half a minute; log: $(MSGS_BUILD).log)"
	@mkdir -p $(dir $(MSGS_BUILD))
	( export AMENT_PREFIX_PATH=$(abspath $(VENV)) CMAKE_PREFIX_PATH=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH && \
	  cmake -S icub_guard_msgs -B $(MSGS_BUILD) -Wno-dev -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release \
	    -DCMAKE_INSTALL_PREFIX=$(abspath $(VENV)) -DPython3_EXECUTABLE=$(abspath $(PY)) \
	    -DCMAKE_PROJECT_INCLUDE=$(abspath icub_guard_msgs/cmake/pip_wheels.cmake) && \
	  cmake --build $(MSGS_BUILD) -j $$(nproc) && cmake --install $(MSGS_BUILD) ) > $(MSGS_BUILD).log 2>&1 \
	  || { tail -40 $(MSGS_BUILD).log; exit 1; }
	$(PY) -c "from icub_guard_msgs.msg import Decision; from icub_guard_msgs.srv import Teach"
	touch $@

msgs: $(VENV)/.msgs

demo: $(VENV)/.msgs
	$(VENV)/bin/icub-guard demo

lint: $(VENV)/.msgs
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest -q

# The teacher page in a real browser (test/test_web_browser.py): installs Debian's chromium and
# chromium-driver when they are missing (apt-get, as root), then runs the test; it must run, not skip.
# The page's screenshot goes to $(SCREENSHOT) (README's picture: SCREENSHOT=docs/teacher_page.png).
SCREENSHOT ?= build/teacher_page.png
test-browser: $(VENV)/.msgs
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" != 0 ]; then echo "test-browser: install chromium and chromium-driver (as root)"; exit 2; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; fi
	ICUB_GUARD_REQUIRE_BROWSER=1 ICUB_GUARD_SCREENSHOT=$(abspath $(SCREENSHOT)) $(PY) -m pytest -q -rs test/test_web_browser.py

bench: $(VENV)/.msgs   # about 40 minutes on a 2-core CPU (bench_evaluate runs evaluate twice; bench_web keeps a page open 10 min)
	$(PY) bench/bench_features.py
	$(PY) bench/bench_online.py
	$(PY) bench/bench_guard.py
	$(PY) bench/bench_attacks.py
	$(PY) bench/bench_journal.py
	$(PY) bench/bench_screening.py
	$(PY) bench/bench_startup.py
	$(PY) bench/bench_defences.py
	$(PY) bench/bench_evaluate.py
	$(PY) bench/bench_sweep.py
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then $(PY) bench/bench_web.py; \
	  else echo "bench_web.py skipped: no Chromium (make test-browser installs it)"; fi

# SecML 0.13 (the reference the fast curve is measured against) pins numpy < 2: it gets an environment of its own.
SECML_VENV ?= .venv-secml
bench-secml: $(VENV)/.installed
	test -x $(SECML_VENV)/bin/python || $(PYTHON) -m venv $(SECML_VENV)
	$(SECML_VENV)/bin/pip install -q "numpy<2" "matplotlib<3.9" "setuptools<81" torch==2.14.1 torchvision==0.29.1 \
	  scipy==1.17.1 scikit-learn==1.9.1 opencv-python-headless==4.10.0.84 pybullet==3.2.7 tqdm PyYAML joblib \
	  Pillow requests python-dateutil mcap==1.6.0 mcap-ros2-support==0.6.0
	$(SECML_VENV)/bin/pip install -q --no-deps secml==0.13
	PYTHONPATH=. $(SECML_VENV)/bin/python bench/bench_secml.py

clean:
	rm -rf $(VENV) build install log *.egg-info
