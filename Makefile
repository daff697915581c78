# Build and test entry points for the vnuma.libvirt collection.  `make help` lists the targets.
#
# Everything runs from the repository root (= the collection root) with the project's own virtual
# environment in .venv (Python 3.11, requirements-dev.txt).  The collection is importable as
# ansible_collections.vnuma.libvirt through .build/collections, a symlink farm made by `make collection`.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
BIN := $(VENV)/bin
VENV_STAMP := $(VENV)/.requirements-dev.stamp
BUILD := $(ROOT)/.build
COLLECTIONS := $(BUILD)/collections
COLLECTION_LINK := $(COLLECTIONS)/ansible_collections/vnuma/libvirt
UNIT_LOG := $(BUILD)/unit.log
INTEGRATION_LOG := $(BUILD)/integration.log
LAB_LOG := $(BUILD)/lab.log
GUEST_IMAGE := $(BUILD)/guest-image
LAB_DIR := $(BUILD)/lab
# Topology files of `make lab-up` (docs/lab.md); `make lab` boots the ones its tests use.
LAB_TOPOLOGY ?= tests/lab/four-node.yml
LAB_TEST_TOPOLOGY := tests/lab/four-node.yml tests/lab/two-node.yml
LAB := PYTHONPATH="$(COLLECTIONS)" "$(BIN)/python" scripts/lab/lab.py --dir "$(LAB_DIR)"
# Written by lab-test-up when it booted the lab, so that lab-test-down stops only a lab make test booted.
LAB_BOOTED_BY_TEST := $(LAB_DIR)/booted-by-make-test

# Python 3.11 to create the venv with: a pyenv 3.11 install when there is one (the `python3` on PATH is a
# pyenv shim that may point at another version), else python3.11 from PATH.  Override: make PYTHON311=...
PYTHON311 ?= $(or $(lastword $(sort $(wildcard $(HOME)/.pyenv/versions/3.11.*/bin/python3.11))),$(shell command -v python3.11 2>/dev/null),python3.11)

PYTEST_ARGS ?=
# Extra pytest arguments of `make integration` (e.g. -k hotplug).
INTEGRATION_ARGS ?=
# The role's molecule scenarios (extensions/molecule), in the order `make molecule` runs them.
MOLECULE_SCENARIOS ?= default restart capacity

# Stages of `make test` (scripts/test-stages.sh runs them).  The setup goes first, one stage after the
# other, and stops the run when one fails; it installs every Debian package the stages need, the lab's too,
# so that no two stages run apt at the same time.  Then two chains side by side: the stages with guests on
# this machine's libvirtd, one after the other, and those that need no daemon (the lab's image is built
# there).  lab goes last, alone: it is the longest stage (boot, nested TCG guests) and needs nothing after
# it.  Every stage after the setup runs; the run fails at the end when any of them failed.
TEST_SETUP := system-deps venv collection
TEST_DAEMON_STAGES := integration molecule playbook-tests browser
TEST_OFFLINE_STAGES := lint ansible-lint mypy unit sanity ansible-units build changelog-lint lab-image lab-test-up
TEST_LAST := lab
# Run when make test ends, however it ends (scripts/test-stages.sh): stops the lab lab-test-up booted.
TEST_CLEANUP := lab-test-down
TEST_STAGES := $(TEST_DAEMON_STAGES) $(TEST_OFFLINE_STAGES) $(TEST_LAST)
# The Debian package groups `make system-deps` installs (scripts/install-system-deps.sh; empty: its
# default groups, all but the lab's and the benchmarks').
SYSTEM_DEPS_GROUPS ?=

.PHONY: help system-deps venv collection lint ansible-lint mypy format unit libvirtd libvirtd-stop guest-image integration \
	molecule playbook-tests browser sanity ansible-units build changelog-lint test demo demo-expand bench clean distclean \
	lab-image lab-up lab-down lab-test-up lab-test-down lab lab-boot-test lab-migration-test options-docs

help:
	@echo "make test            everything CI runs: $(TEST_SETUP) $(TEST_STAGES)"
	@echo "make system-deps     install every missing Debian package (each target installs the groups it needs)"
	@echo "make venv            .venv with Python 3.11 and requirements-dev.txt (Debian packages: build group)"
	@echo "make collection      .build/collections/ansible_collections/vnuma/libvirt -> repository root"
	@echo "make lint            ruff check + ruff format --check"
	@echo "make ansible-lint    ansible-lint, production profile, over the whole collection (.ansible-lint)"
	@echo "make mypy            mypy, strict (pyproject.toml), over plugins/, tests/support and benchmarks"
	@echo "make format          ruff check --fix + ruff format"
	@echo "make options-docs    write the spec options' doc fragment, role argument specs and vnuma_layout docs from the option table"
	@echo "make unit            pytest tests/unit (PYTEST_ARGS='--regenerate-output' rewrites golden files)"
	@echo "make libvirtd        start libvirtd + virtlogd for qemu:///system (scripts/libvirtd.sh; libvirtd-stop)"
	@echo "make guest-image     build the integration tests' guest kernel + initramfs into .build/guest-image"
	@echo "make integration     pytest tests/integration: real libvirtd, real TCG guests (INTEGRATION_ARGS=...)"
	@echo "make molecule        molecule test of the vnuma_fleet role's scenarios on qemu:///system ($(MOLECULE_SCENARIOS))"
	@echo "make playbook-tests  ansible-playbook tests/playbooks/test_*.yml against localhost"
	@echo "make browser         the role's HTML reports in headless chromium at 1400 and 420 px (.build/screenshots/)"
	@echo "make sanity          ansible-test sanity on a copy under .build/ansible-test"
	@echo "make ansible-units   ansible-test units on the same copy"
	@echo "make build           ansible-galaxy collection build into .build/ + install test"
	@echo "make changelog-lint  antsibull-changelog lint"
	@echo "make lab-image       build the lab hypervisor's Debian image into .build/lab/image (docs/lab.md)"
	@echo "make lab-up          boot the lab's multi-node hypervisors (LAB_TOPOLOGY=$(LAB_TOPOLOGY)); lab-down stops them"
	@echo "make lab             lab-up with the lab tests' topologies, pytest tests/lab, lab-down"
	@echo "make lab-test-up     boot the lab tests' topologies for make lab (make test does, early); lab-test-down stops them"
	@echo "make lab-boot-test   like make lab, only the tests that boot a real guest kernel in the lab (minutes)"
	@echo "make lab-migration-test  like make lab, only the live migrations lab4 -> lab2 over the lab network"
	@echo "make demo            the vnuma_fleet role converts a test-driver hypervisor (demo/demo.yml)"
	@echo "make demo-expand     example guests expanded for the proposal's 4-node host (demo/expand.yml)"
	@echo "make bench           the benchmarks (benchmarks/)"
	@echo "make clean           remove .build, tests/output and tool caches (distclean: also .venv)"

system-deps:
	@scripts/install-system-deps.sh $(SYSTEM_DEPS_GROUPS)

venv: $(VENV_STAMP)

# Only the build group: what compiles libvirt-python and runs the test driver.  Targets that need more
# (sanity, a real libvirtd) install their own groups.
$(VENV_STAMP): requirements-dev.txt scripts/install-system-deps.sh
	@scripts/install-system-deps.sh build
	@if [[ -x "$(BIN)/python" ]] && ! "$(BIN)/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then \
		echo "venv: $(VENV) is not Python 3.11, recreating it"; rm -rf "$(VENV)"; \
	fi
	@if [[ ! -x "$(BIN)/python" ]]; then \
		echo "venv: creating $(VENV) with $(PYTHON311)"; \
		"$(PYTHON311)" -m venv "$(VENV)"; \
	fi
	@echo "venv: pip install --requirement requirements-dev.txt"
	@# pip warns about every index location of the machine's pip configuration that does not exist: not useful here.
	@"$(BIN)/python" -m pip install --quiet --requirement requirements-dev.txt 2>&1 | \
		sed "/^WARNING: Location 'file:.*' is ignored: it is neither a file nor a directory\.$$/d"
	@touch "$@"

collection:
	@mkdir -p "$(dir $(COLLECTION_LINK))"
	@ln -sfn ../../../.. "$(COLLECTION_LINK)"
	@test -e "$(COLLECTION_LINK)/galaxy.yml"

lint: venv
	@rc=0; \
	echo "ruff check"; "$(BIN)/ruff" check --no-fix . || rc=1; \
	echo "ruff format --check"; "$(BIN)/ruff" format --check . || rc=1; \
	exit $$rc

# The production profile (what certified collections pass) over the whole collection: the role, the
# molecule scenarios, the demo, the test playbooks, galaxy.yml, meta/ (configuration: .ansible-lint).
# Offline: nothing is installed from Galaxy; the collection is found through .build/collections.
ansible-lint: venv collection
	@if [[ ! -t 1 ]]; then export NO_COLOR=1; fi; \
	PATH="$(BIN):$$PATH" ANSIBLE_COLLECTIONS_PATH="$(COLLECTIONS)" "$(BIN)/ansible-lint"

# The collection's code is checked under its import names (ansible_collections.vnuma.libvirt...), found
# through .build/collections; the sed prints the paths relative to the repository root again.
MYPY_PACKAGES := ansible_collections.vnuma.libvirt.plugins ansible_collections.vnuma.libvirt.tests.support benchmarks

mypy: venv collection
	@"$(BIN)/mypy" $(addprefix -p ,$(MYPY_PACKAGES)) 2>&1 | sed 's#^\.build/collections/ansible_collections/vnuma/libvirt/##'

format: venv
	"$(BIN)/ruff" check --fix .
	"$(BIN)/ruff" format .

# pytest's exit status 5 means that no test was collected: not a failure while tests/unit is still empty.
# Two workers (pytest-xdist): the unit tests share nothing and the machines have two cores.
unit: venv collection
	@mkdir -p "$(BUILD)"
	@rc=0; \
	PYTHONPATH="$(COLLECTIONS)" "$(BIN)/python" -m pytest -q -p no:cacheprovider -n 2 tests/unit $(PYTEST_ARGS) \
		2>&1 | tee "$(UNIT_LOG)" || rc=$$?; \
	if [[ $$rc -eq 5 ]]; then echo "unit: no unit tests collected"; rc=0; fi; \
	exit $$rc

libvirtd:
	@scripts/install-system-deps.sh integration
	@scripts/libvirtd.sh start

libvirtd-stop:
	@scripts/libvirtd.sh stop

guest-image:
	@scripts/build-guest-image.sh "$(GUEST_IMAGE)"

# Starts libvirtd for the run and stops it at the end, whatever the outcome; a libvirtd that was already
# running before (`make libvirtd`) is left running.  Two passes: the tests run two files at a time
# (pytest-xdist), then those marked host_cpus run alone: they dedicate host CPUs, and this machine's two
# would leave a test running beside them nowhere to place a guest.  INTEGRATION_ARGS goes to both.
integration: venv collection
	@mkdir -p "$(BUILD)"; rm -f "$(INTEGRATION_LOG)"
	@if scripts/libvirtd.sh status >/dev/null 2>&1; then \
		echo "integration: libvirtd already runs; leaving it running"; \
	else \
		trap 'scripts/libvirtd.sh stop' EXIT; \
	fi; \
	$(MAKE) libvirtd guest-image; \
	rc=0; \
	PYTHONPATH="$(COLLECTIONS)" "$(BIN)/python" -m pytest -q -p no:cacheprovider --durations=0 -n 2 --dist loadfile \
		-m "not host_cpus" tests/integration $(INTEGRATION_ARGS) 2>&1 | tee "$(INTEGRATION_LOG)" || rc=$$?; \
	PYTHONPATH="$(COLLECTIONS)" "$(BIN)/python" -m pytest -q -p no:cacheprovider --durations=0 \
		-m host_cpus tests/integration $(INTEGRATION_ARGS) 2>&1 | tee -a "$(INTEGRATION_LOG)" || rc=$$?; \
	exit $$rc

# The vnuma_fleet role's molecule scenarios (extensions/molecule, base configuration in its config.yml)
# against qemu:///system on this machine, each with its own guests (vnuma-mol-<scenario>-*).  The
# collection is used in place through .build/collections.  libvirtd is started as for `make integration`
# and stopped at the end unless it ran before.  Every scenario runs, even after a failure.
molecule: venv collection
	@if scripts/libvirtd.sh status >/dev/null 2>&1; then \
		echo "molecule: libvirtd already runs; leaving it running"; \
	else \
		trap 'scripts/libvirtd.sh stop' EXIT; \
	fi; \
	$(MAKE) libvirtd; \
	export PATH="$(BIN):$$PATH" ANSIBLE_COLLECTIONS_PATH="$(COLLECTIONS)" ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false; \
	if [[ ! -t 1 ]]; then export NO_COLOR=1; fi; \
	failed=(); \
	for scenario in $(MOLECULE_SCENARIOS); do \
		echo "=== molecule test --scenario-name $$scenario"; t0=$$SECONDS; \
		if "$(BIN)/molecule" test --scenario-name "$$scenario"; then status=passed; else status=FAILED; failed+=("$$scenario"); fi; \
		echo "molecule: $$scenario $$status in $$((SECONDS - t0))s"; \
	done; \
	if [[ $${#failed[@]} -gt 0 ]]; then echo "molecule: FAILED scenarios: $${failed[*]}"; exit 1; fi; \
	echo "molecule: all scenarios passed ($(MOLECULE_SCENARIOS))"

playbook-tests: venv collection
	@scripts/playbook-tests.sh

# The role's HTML reports, rendered from recorded role data, opened in Debian's headless chromium at a
# desktop and a phone width: no sideways overflow, the SVG diagrams drawn, screenshots kept in
# .build/screenshots/ for a human to look at.
browser: venv collection
	@scripts/install-system-deps.sh browser
	@PYTHONPATH="$(COLLECTIONS)" "$(BIN)/python" -m pytest -q -p no:cacheprovider tests/browser $(PYTEST_ARGS)

sanity: venv
	@scripts/install-system-deps.sh sanity
	@scripts/ansible-test.sh sanity

ansible-units: venv
	@scripts/ansible-test.sh units

# Builds the collection tarball, installs it into a scratch collections path and lists its plugins from there.
build: venv
	@mkdir -p "$(BUILD)"
	@rm -f "$(BUILD)"/vnuma-libvirt-*.tar.gz
	"$(BIN)/ansible-galaxy" collection build --force --output-path "$(BUILD)" .
	@tarball=$$(ls "$(BUILD)"/vnuma-libvirt-*.tar.gz); \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	export ANSIBLE_COLLECTIONS_PATH="$$tmp" ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false; \
	"$(BIN)/ansible-galaxy" collection install --offline --collections-path "$$tmp" "$$tarball"; \
	for type in filter module; do \
		plugins=$$("$(BIN)/ansible-doc" -t $$type -l vnuma.libvirt); \
		echo "build: $$type plugins of the installed $$(basename "$$tarball"):"; \
		echo "$${plugins:-(none)}" | sed 's/^/  /'; \
	done

changelog-lint: venv
	"$(BIN)/antsibull-changelog" lint

# The lab (docs/lab.md): nested multi-node hypervisors under QEMU TCG, with their own libvirtd; never this
# machine's libvirtd.  `make lab` leaves a lab that was up before it running, as `make integration` does
# with libvirtd.
lab-image:
	@scripts/install-system-deps.sh lab
	@scripts/lab/build-image.sh "$(LAB_DIR)/image"

lab-up: venv collection lab-image
	@$(LAB) up $(LAB_TOPOLOGY)

lab-down: venv collection
	@$(LAB) down

# `make test` boots the lab tests' topologies as soon as the lab image is built, at the end of the chain of
# stages that need no daemon, so that the boot (about a minute, CPU-bound) overlaps the libvirtd chain's last
# stages, whose TCG guests leave the CPUs mostly idle; `make lab` then finds the lab up, and lab-test-down
# stops it when make test ends.  A lab that was up before is left as it is (no marker is written for it).
# The marker is written before the boot: a boot cut short (a TERM kills lab.py without its clean-up) may
# leave hypervisors running, and lab-test-down stops whatever lab.py's state lists.
lab-test-up: venv collection lab-image
	@if $(LAB) status >/dev/null 2>&1; then \
		echo "lab-test-up: the lab is already up; leaving it as it is"; \
	else \
		mkdir -p "$(LAB_DIR)"; touch "$(LAB_BOOTED_BY_TEST)"; \
		t0=$$SECONDS; $(LAB) up $(LAB_TEST_TOPOLOGY); echo "lab-test-up: booted in $$((SECONDS - t0)) s"; \
	fi

lab-test-down: venv collection
	@if [[ -f "$(LAB_BOOTED_BY_TEST)" ]]; then rm -f "$(LAB_BOOTED_BY_TEST)"; $(LAB) down; fi

# The lab stage of `make test`: the lab is stopped whatever the outcome (a failed boot or test, Ctrl-C, a
# TERM from a CI timeout); INT and TERM exit so that the EXIT trap runs.  It runs every lab test but the live
# migrations between lab hypervisors (marker lab_migration: `make lab-migration-test`).  The tests that boot
# the guest image's kernel inside lab4 (marker lab_boot) go last, their two guests booting side by side
# (tests/lab/conftest.py; docs/lab.md has their cost).
lab: venv collection lab-image guest-image
	@mkdir -p "$(BUILD)"; rm -f "$(LAB_LOG)"
	@if $(LAB) status >/dev/null 2>&1; then \
		echo "lab: the lab is already up; leaving it running"; \
	else \
		trap '$(LAB) down' EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; \
		t0=$$SECONDS; $(LAB) up $(LAB_TEST_TOPOLOGY); echo "lab: booted in $$((SECONDS - t0)) s"; \
	fi; \
	VNUMA_LAB_DIR="$(LAB_DIR)" PYTHONPATH="$(COLLECTIONS)" "$(BIN)/python" -m pytest -q -p no:cacheprovider --durations=0 \
		-m "not lab_migration" tests/lab $(PYTEST_ARGS) 2>&1 | tee "$(LAB_LOG)"

# Only the lab tests that wait for the guest image's kernel inside lab4 (marker lab_boot: in test_lab_boot.py
# and test_lab_virtio_mem.py; `make lab` runs them too, last), for working on them alone.  The lab is booted
# and stopped as `make lab` does.
lab-boot-test: venv collection lab-image guest-image
	@if $(LAB) status >/dev/null 2>&1; then \
		echo "lab-boot-test: the lab is already up; leaving it running"; \
	else \
		trap '$(LAB) down' EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; \
	fi; \
	$(LAB) up tests/lab/four-node.yml; \
	VNUMA_LAB_DIR="$(LAB_DIR)" PYTHONPATH="$(COLLECTIONS)" "$(BIN)/python" -m pytest -q -s -p no:cacheprovider --durations=0 \
		-m lab_boot tests/lab $(PYTEST_ARGS)

# Only the live migrations between lab hypervisors (marker lab_migration: test_lab_migration.py, lab4 -> lab2
# over the lab network; docs/lab.md has its cost).  Both topologies are booted and stopped as `make lab` does.
lab-migration-test: venv collection lab-image
	@if $(LAB) status >/dev/null 2>&1; then \
		echo "lab-migration-test: the lab is already up; leaving it running"; \
	else \
		trap '$(LAB) down' EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; \
	fi; \
	t0=$$SECONDS; $(LAB) up $(LAB_TEST_TOPOLOGY); echo "lab-migration-test: booted in $$((SECONDS - t0)) s"; \
	VNUMA_LAB_DIR="$(LAB_DIR)" PYTHONPATH="$(COLLECTIONS)" "$(BIN)/python" -m pytest -q -p no:cacheprovider --durations=0 \
		-m lab_migration tests/lab $(PYTEST_ARGS)

# The demos need no libvirt daemon: the fleet demo runs the vnuma_fleet role against libvirt's
# in-process test driver, the expand demo only renders XML.  Skipped tasks are not shown (the role
# skips the steps its policies leave out).
demo: venv collection
	@ANSIBLE_DISPLAY_SKIPPED_HOSTS=false scripts/playbook.sh demo/demo.yml

demo-expand: venv collection
	@scripts/playbook.sh demo/expand.yml

# The spec options' static documentation from plugins/module_utils/_core/options.py; tests/unit/test_option_docs.py
# fails while the committed files differ from it.
options-docs: venv collection
	@PYTHONPATH="$(COLLECTIONS)" "$(BIN)/python" scripts/gen-option-docs.py

# The partitioner's figures need nothing running; the converge and fleet figures need libvirtd (started here);
# the lab's figures build the lab image from scratch and boot a lab of their own unless one is up.
bench: venv collection
	@export PYTHONPATH="$(COLLECTIONS):$(ROOT)"; rc=0; \
	scripts/install-system-deps.sh bench; "$(BIN)/python" -m benchmarks || rc=1; \
	echo; scripts/install-system-deps.sh integration; scripts/libvirtd.sh start; \
	"$(BIN)/python" -m benchmarks.converge || rc=1; \
	echo; "$(BIN)/python" -m benchmarks.fleet || rc=1; \
	echo; scripts/install-system-deps.sh lab; "$(BIN)/python" -m benchmarks.lab || rc=1; \
	exit $$rc

# Runs every stage (scripts/test-stages.sh: the setup, then the daemon and offline chains side by side, then
# the lab), prints how long each took, and the unit, integration and lab tests' pytest summary lines.
test:
	@MAKE="$(MAKE)" UNIT_LOG="$(UNIT_LOG)" INTEGRATION_LOG="$(INTEGRATION_LOG)" LAB_LOG="$(LAB_LOG)" \
		STAGE_LOGS="$(BUILD)/stages" SYSTEM_DEPS_GROUPS="build sanity integration browser lab" \
		CLEANUP="$(TEST_CLEANUP)" \
		scripts/test-stages.sh "$(TEST_SETUP)" "$(TEST_DAEMON_STAGES)" "$(TEST_OFFLINE_STAGES)" "$(TEST_LAST)"

clean:
	rm -rf "$(BUILD)" tests/output .pytest_cache .ruff_cache .hypothesis

distclean: clean
	rm -rf "$(VENV)"
