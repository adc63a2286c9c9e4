# kd-lab: make install | lab | test | labs | outputs | grade | release | bench
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install lab test labs outputs grade release bench bench-long browser-deps grade-deps clean

install: $(STAMP)            ## create .venv if missing and install the course into it (idempotent)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e ".[test]"
	touch $(STAMP)

lab: install                 ## start JupyterLab on labs/
	$(VENV)/bin/jupyter lab labs/

test: install                ## the whole test suite (quick budget), two workers of one torch thread each
	KDLAB_QUICK=1 $(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder

labs: install                ## regenerate labs/ from solutions/
	$(PY) -m kdlab.authoring make-labs

outputs: install              ## re-execute solutions/ (full budget) and save their outputs: make outputs [NOTEBOOKS="03_response_kd ..."]
	$(PY) -m kdlab.authoring refresh-outputs $(NOTEBOOKS)

grade: install               ## grade a folder of submissions (sandboxed): make grade SUBMISSIONS=dir [OUT=gradebook.csv]
	@test -n "$(SUBMISSIONS)" || (echo "usage: make grade SUBMISSIONS=path/to/submissions [OUT=gradebook.csv]"; exit 2)
	$(PY) -m kdlab.grading grade "$(SUBMISSIONS)" --out "$(or $(OUT),gradebook.csv)"

release: install             ## the student release (labs/, kdlab, README; no solutions): make release [OUT=release]
	$(PY) -m kdlab.authoring release "$(or $(OUT),release)"

bench: install               ## the benchmarks behind the README's headline rows (< 1 h), render the tables
	$(PY) -m benchmarks.run_all --set default

bench-long: install          ## the hours-long reproductions (resumable) and the 1-thread course times
	$(PY) -m benchmarks.run_all --set long

# $(call apt_deps,TARGET,COMMANDS,PACKAGES,WHAT): install PACKAGES with apt-get unless every
# command in COMMANDS is already on the PATH
define apt_deps
	@missing=; for c in $(2); do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	if [ -z "$$missing" ]; then \
	  echo "$(1): $(2) already installed"; \
	elif ! command -v apt-get >/dev/null; then \
	  echo "$(1): no apt-get here; install $(4) with your system's package manager" >&2; exit 1; \
	else \
	  SUDO=$$(test "$$(id -u)" -eq 0 || echo sudo); \
	  $$SUDO apt-get update && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(3); \
	fi
endef

browser-deps:                ## Debian/Ubuntu (root or sudo): the system Chromium the browser test drives
	$(call apt_deps,browser-deps,chromium chromedriver,chromium chromium-driver,Chromium (or set KDLAB_CHROMIUM=/path/to/chromium))

grade-deps:                  ## Debian/Ubuntu (root or sudo): bubblewrap, the sandbox the grader runs student code in
	$(call apt_deps,grade-deps,bwrap prlimit,bubblewrap util-linux,bubblewrap (bwrap) and util-linux (prlimit))

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
