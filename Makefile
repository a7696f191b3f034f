# edge_classifier — standalone workflow (no ROS install needed). See README.md.
SHELL := /bin/bash
# The interpreter of the standalone environment: `PYTHON=python3.10 make test` sets up and
# tests in a venv of its own (.venv-python3.10), the default python3 in .venv.
PYTHON ?= python3
export PYTHON
VENV  ?= $(CURDIR)/.venv$(if $(filter python3,$(PYTHON)),,-$(notdir $(PYTHON)))
PY    := $(VENV)/bin/python
# The second environment: ROS 2 Jazzy wheels (cp311 only) with Jazzy-era numpy/OpenCV/ORT.
JAZZY_VENV   ?= $(CURDIR)/.venv-jazzy
JAZZY_PYTHON ?= $(shell command -v python3.11 || command -v python3)
# DDS stays on the loopback; a random domain keeps parallel runs on one machine apart.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
ROS_DOMAIN_ID ?= $(shell echo $$(( RANDOM % 100 + 1 )))
export ROS_DOMAIN_ID
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: setup setup-jazzy demo demo-bag demo-two-stage demo-web browser net-tools test test-jazzy test-slow check-registry mutation bench clean
setup:
	@EDGE_CLASSIFIER_VENV=$(VENV) bash standalone/setup_env.sh

setup-jazzy:
	@EDGE_CLASSIFIER_VENV=$(JAZZY_VENV) PYTHON=$(JAZZY_PYTHON) \
	  EDGE_CLASSIFIER_REQUIREMENTS=$(CURDIR)/standalone/requirements-jazzy.txt \
	  bash standalone/setup_env.sh

demo: setup
	@$(PY) -m edge_classifier.tools.demo $(DEMO_ARGS)

# recorded data: a bag of the sample photos (MCAP, build/demo_bag), classified offline into
# build/demo_bag_classified; prints the summary. `make demo DEMO_ARGS="--source build/demo_bag"`
# then plays that bag into the live node.
demo-bag: setup
	@rm -rf build/demo_bag build/demo_bag_classified
	@$(PY) -m edge_classifier.tools.bag sample build/demo_bag --frames 30
	@$(PY) -m edge_classifier.tools.bag classify build/demo_bag --output build/demo_bag_classified

# the two-stage pipeline: a stand-in detector's boxes (mosaic tiles), each classified
demo-two-stage: setup
	@$(PY) -m edge_classifier.tools.demo --two-stage

# the sample camera, the classifier and the web view: open the URL it prints (Ctrl-C stops);
# DEMO_ARGS=--two-stage: the same with the stand-in detector (the page lists each box)
demo-web: setup
	@$(PY) -m edge_classifier.tools.demo --web --timeout 0 $(DEMO_ARGS)

# A headless browser for the web view's browser test (Debian's chromium and chromium-driver;
# CI runs it; without them that one test is skipped, saying so).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
	  echo "[browser] $$(chromium --version 2>/dev/null), $$(chromedriver --version | cut -d' ' -f1-2)"; \
	else \
	  $$([ "$$(id -u)" = 0 ] || echo sudo) apt-get install -y chromium chromium-driver; \
	fi

# Test hosts for the across-computers tests (test_across_hosts.py: network namespaces, a veth
# pair, tc; nftables drops datagrams): iproute2 and nftables. CI runs it; as root only.
net-tools:
	@if command -v ip >/dev/null && command -v tc >/dev/null && command -v nft >/dev/null; then \
	  echo "[net-tools] $$(ip -V), $$(nft --version)"; \
	else \
	  $$([ "$$(id -u)" = 0 ] || echo sudo) apt-get install -y iproute2 nftables; \
	fi

# No network needed once `make setup` has run (a robot has none).
test: setup
	@echo "[test] $$($(PY) -V) ROS_DOMAIN_ID=$$ROS_DOMAIN_ID ROS_AUTOMATIC_DISCOVERY_RANGE=$$ROS_AUTOMATIC_DISCOVERY_RANGE"
	@$(PY) -m pytest test $(PYTEST_ARGS)

# The whole suite as on a slow or busy machine (CI runs it): the tests and every process
# they start get 1/SLOW_FACTOR (default 3) of the CPU (standalone/slow_machine.sh: a cgroup
# CPU quota as root, else a busy process per core).
SLOW_FACTOR ?= 3
export SLOW_FACTOR
test-slow: setup
	@bash standalone/slow_machine.sh $(MAKE) --no-print-directory test

test-jazzy: setup-jazzy
	@echo "[test-jazzy] ROS_DOMAIN_ID=$$ROS_DOMAIN_ID ROS_AUTOMATIC_DISCOVERY_RANGE=$$ROS_AUTOMATIC_DISCOVERY_RANGE"
	@$(JAZZY_VENV)/bin/python -m pytest test $(PYTEST_ARGS)

# Maintainers' checks that ask the package registry (CI runs them): every pin has a wheel
# for each supported Python, and a fresh machine's set-up resolves without GPU packages.
check-registry: setup
	@$(PY) -m pytest checks $(PYTEST_ARGS)

# Mutation testing of the ROS-free core (setup.cfg [mutmut]: which modules, which tests).
# Not in make test: it runs the unit tests once per mutant (~12 min on 2 cores). mutants/
# keeps mutmut's results (`mutmut browse` shows the survivors); `make clean` resets them.
MUTATION_FAIL_UNDER ?= 90
mutation: setup
	@$(PY) -m pip install -q --disable-pip-version-check -r standalone/requirements-mutation.txt
	@EDGE_CLASSIFIER_DATA=$(CURDIR) $(VENV)/bin/mutmut run --max-children $$(nproc)
	@$(PY) standalone/mutation_score.py --fail-under $(MUTATION_FAIL_UNDER)

bench: setup
	@$(PY) -m edge_classifier.tools.bench

clean:
	rm -rf build install log .pytest_cache mutants
