# fx: serverless functions inside PostgreSQL.
#
#   make          build the extension, the fx binary and the C example
#   make install  install both into the PostgreSQL found by pg_config and PREFIX
#   make run      install what is missing, build, install, start the embedded
#                 default (fx up), deploy the examples and invoke them
#   make check    install what is missing, build, install, run every suite
#   make fuzz     run the libFuzzer targets, FUZZ_SECONDS each (default 600)
#   make bench    measure fx against its peers (QUICK=1: a smoke run)
PG_CONFIG ?= pg_config
PREFIX ?= /usr/local

all: deps-check
	$(MAKE) -C extension PG_CONFIG=$(PG_CONFIG)
	$(MAKE) -C worker PREFIX=$(PREFIX)
	$(MAKE) -C examples/hello-c

# Fail early with a clear message when a build dependency is missing.
deps-check:
	@command -v $(PG_CONFIG) >/dev/null && pkg-config --exists libuv libpq libcjson libarchive || \
		{ echo "fx: build dependencies are missing; run scripts/deps.sh (or make deps)" >&2; exit 1; }

deps:
	scripts/deps.sh

install: all
	$(MAKE) -C extension install PG_CONFIG=$(PG_CONFIG)
	$(MAKE) -C worker install PREFIX=$(PREFIX)

run: deps
	$(MAKE) install
	scripts/run.sh

check: deps
	$(MAKE) install
	tests/check.sh

# The chaos suite's large run (make check runs a small one): KILLS=N sets
# how many workers it kills.
KILLS ?= 5000
chaos: deps
	$(MAKE) install
	KILLS=$(KILLS) bash tests/chaos/run.sh

# The chaos cells at full size, minutes each (make check runs them small):
# CELLS="restart starvation" picks some.
CELLS ?= terminate restart held-snapshot max-connections retry-storm starvation
chaos-cells: deps
	$(MAKE) install
	SIZE=full CELLS="$(CELLS)" bash tests/chaos/cells.sh

# libFuzzer targets (fuzz/README.md), FUZZ_SECONDS each (make check runs
# them for 20 s); FUZZ_SAVE=1 merges new coverage into fuzz/corpus/.
FUZZ_SECONDS ?= 600
fuzz: deps
	$(MAKE) -C fuzz run FUZZ_SECONDS=$(FUZZ_SECONDS)

# Benchmarks (not tests): fx against graphile-worker, DBOS Transact and
# PostgreSQL's own ceiling (bench/run.sh), then fx's sandboxes against
# bubblewrap and runc (bench/sandbox.sh), then keyed functions and
# co-located SQL against fx's own no-op (bench/keyed.sh), then durable
# workflows against DBOS Transact (bench/workflow.sh); tables in
# bench/RESULTS.md.  QUICK=1: a short smoke run, written to /tmp,
# RESULTS.md untouched.
bench: deps
	$(MAKE) install
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }
ifeq ($(QUICK),)
	bench/run.sh
	bash bench/sandbox.sh
	bash bench/keyed.sh
	bash bench/workflow.sh
	bench/merge-results.sh
else
	QUICK=1 bench/run.sh
	QUICK=1 bash bench/keyed.sh
	QUICK=1 bash bench/workflow.sh
endif

clean:
	$(MAKE) -C extension clean
	$(MAKE) -C worker clean
	$(MAKE) -C examples/hello-c clean
	rm -rf build

.PHONY: all deps deps-check install run check chaos chaos-cells fuzz bench clean
