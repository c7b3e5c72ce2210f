# Two commands for a newcomer: `make demo` and `make test`. Both install into .venv first if needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# On machines without an NVIDIA GPU, constrain torch to its CPU build; GPU users get the default.
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
ifeq ($(HAS_GPU),1)
TORCH_CONSTRAINT :=
else
TORCH_CONSTRAINT := -c constraints/cpu.txt
# Use the PyTorch CPU wheel index when it is reachable; otherwise rely on the configured indexes.
TORCH_CPU_INDEX := $(shell curl -sfI --max-time 3 https://download.pytorch.org/whl/cpu/torch/ >/dev/null 2>&1 && echo --extra-index-url https://download.pytorch.org/whl/cpu)
endif

.PHONY: install lock demo test test-fast test-slow benchmark benchmark-emulator benchmark-forecast \
        benchmark-diagnostics benchmark-dapper report-bursts lint clean

install: $(STAMP)

# Installs the exact versions of constraints/lock.txt, the ones the tests passed with.
$(STAMP): pyproject.toml constraints/lock.txt constraints/cpu.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -c constraints/lock.txt $(TORCH_CONSTRAINT) $(TORCH_CPU_INDEX) \
		-e '.[dev]'
	touch $(STAMP)

# constraints/lock.txt pins every package that `.[dev]` installs (the cylc extra included) to
# an exact version, for every platform and Python >= 3.11 (uv's universal resolution), with
# the torch of constraints/cpu.txt. It leaves out torch and the CUDA-only packages of torch's
# GPU build (nvidia-*, cuda-*, triton): on CPU machines constraints/cpu.txt pins torch (the
# CPU build), on GPU machines torch comes from the default index (the CUDA build) with the
# nvidia-* packages it names. Pins already in the lock are kept where they still fit;
# `make lock UPGRADE=1` moves every package to its newest version (see constraints/README.md).
LOCK_LEFT_OUT := ^(torch|triton|nvidia-[^ =]*|cuda-[^ =]*)==
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet 'uv>=0.5'
	$(BIN)/uv pip compile pyproject.toml --extra dev -c constraints/cpu.txt --universal \
		--python-version 3.11 --custom-compile-command 'make lock' --quiet \
		$(if $(UPGRADE),--upgrade) -o constraints/lock.txt
	awk '/$(LOCK_LEFT_OUT)/ { skip = 1; next } /^[^ ]/ { skip = 0 } !skip' \
		constraints/lock.txt > constraints/lock.txt.tmp
	{ echo '# torch, triton, nvidia-* and cuda-* are left out: see constraints/README.md.'; \
	  cat constraints/lock.txt.tmp; } > constraints/lock.txt
	rm constraints/lock.txt.tmp

demo: $(STAMP)
	$(BIN)/python -m assimilate.demo

# Every test but the `slow` ones, two (or as many as there are cores) files at a time.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile

# The daily loop: unit, analytic and round-trip tests, no fresh processes (under 2 minutes).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile -m 'not slow and not e2e'

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

benchmark: $(STAMP)
	$(BIN)/python benchmarks/simulate.py

# About an hour on 2 CPU cores: trains 18 small emulators.
benchmark-emulator: $(STAMP)
	$(BIN)/python benchmarks/emulator_tails.py --json benchmarks/results/emulator_tails.json

benchmark-forecast: $(STAMP)
	$(BIN)/python benchmarks/forecast.py --json benchmarks/results/forecast.json

# DAPPER's KS twin run by DAPPER and by us, back to back (about 25 minutes on 2 cores): installs
# DAPPER, a benchmark-only dependency, without its notebook and plotting dependencies.
benchmark-dapper: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps -r constraints/dapper.txt
	$(BIN)/python benchmarks/dapper_parity.py --json benchmarks/results/dapper_parity.json

# Writes a store of 4x the Dask workers' memory (4 GiB by default) under /tmp, then fits GEV and
# GPD at every point of a 64 x 128 x 30-year daily field (about 3 more minutes).
benchmark-diagnostics: $(STAMP)
	$(BIN)/python benchmarks/diagnostics.py --json benchmarks/results/diagnostics.json

# The tail-analysis report of the bursting low-Reynolds Kolmogorov flow (Re 40): simulates
# 8 x 5000 states (about 8 minutes on 2 CPU cores), diagnoses the dissipation bursts above
# the 0.95 quantile (where the GPD shape has settled, see the threshold-stability figure)
# and renders demo-output/kolmogorov-bursts-report.html (+ PDF).
BURSTS_TRAJECTORIES ?= 8
BURSTS_STEPS ?= 5000
BURSTS := demo-output/kolmogorov-bursts-$(BURSTS_TRAJECTORIES)x$(BURSTS_STEPS)
report-bursts: $(STAMP)
	$(BIN)/assimilate simulate configs/kolmogorov-bursts.yaml --out $(BURSTS).zarr \
		--trajectories $(BURSTS_TRAJECTORIES) --steps $(BURSTS_STEPS)
	$(BIN)/assimilate diagnose $(BURSTS).zarr --out $(BURSTS).diag.zarr --label kolmogorov-bursts \
		--pot-quantile 0.95 --overwrite
	$(BIN)/assimilate report $(BURSTS).diag.zarr --out demo-output/kolmogorov-bursts-report.html \
		--pdf demo-output/kolmogorov-bursts-report.pdf --title "Dissipation bursts in Kolmogorov flow at Re 40"

lint: $(STAMP)
	$(BIN)/ruff check pde assimilate tests benchmarks

clean:
	rm -rf $(VENV) demo-output .pytest_cache
