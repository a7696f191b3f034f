# edge_classifier — standalone workflow (no ROS install needed). See README.md.
SHELL := /bin/bash
VENV  ?= $(CURDIR)/.venv
PY    := $(VENV)/bin/python
# DDS stays on the loopback; a random domain keeps parallel runs on one machine apart.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
ROS_DOMAIN_ID ?= $(shell echo $$(( RANDOM % 100 + 1 )))
export ROS_DOMAIN_ID
PYTEST_ARGS ?=

.PHONY: setup demo test bench clean
setup:
	@EDGE_CLASSIFIER_VENV=$(VENV) bash standalone/setup_env.sh

demo: setup
	@$(PY) -m edge_classifier.tools.demo

test: setup
	@echo "[test] ROS_DOMAIN_ID=$$ROS_DOMAIN_ID ROS_AUTOMATIC_DISCOVERY_RANGE=$$ROS_AUTOMATIC_DISCOVERY_RANGE"
	@$(PY) -m pytest test $(PYTEST_ARGS)

bench: setup
	@$(PY) -m edge_classifier.tools.bench

clean:
	rm -rf build install log .pytest_cache
