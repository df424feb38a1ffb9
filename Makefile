# Sluice: one Makefile for the broker, controller, tests and benchmarks.
#   make                      build build/bin/sluice-broker and sluice-controller
#   make SANITIZER=address,undefined
#   make run | test | bench | fuzz | fuzz-check | fuzz-merge | unit | e2e | clean
CC        ?= cc
OPT       ?= -O2
CFLAGS    ?= $(OPT) -g
WARN      := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wstrict-prototypes
CPPFLAGS  += -D_GNU_SOURCE -Ibroker/src -Icontroller/src
BUILD     ?= build
ifdef SANITIZER
CFLAGS    += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS   += -fsanitize=$(SANITIZER)
BUILD     := build/san
endif
BIN       := $(BUILD)/bin
OBJ       := $(BUILD)/obj

BROKER_LIBS := -lrocksdb -lmicrohttpd -lcjson -lcurl -lssl -lcrypto -lpthread -lm
CTL_LIBS    := -lcurl -lcjson -lssl -lcrypto -lpthread -lm

BROKER_SRC  := $(wildcard broker/src/*.c)
BROKER_LIB  := $(filter-out broker/src/main.c,$(BROKER_SRC))
BROKER_OBJ  := $(BROKER_SRC:%.c=$(OBJ)/%.o)
BROKER_LOBJ := $(BROKER_LIB:%.c=$(OBJ)/%.o)
CTL_SRC     := $(wildcard controller/src/*.c)
CTL_OBJ     := $(CTL_SRC:%.c=$(OBJ)/%.o)
CTL_LOBJ    := $(filter-out $(OBJ)/controller/src/main.o,$(CTL_OBJ))
UNIT_SRC    := $(wildcard tests/unit/test_*.c)
UNIT_BIN    := $(UNIT_SRC:tests/unit/%.c=$(BIN)/tests/%)

TARGETS := $(BIN)/sluice-broker
ifneq ($(CTL_SRC),)
TARGETS += $(BIN)/sluice-controller
endif

.PHONY: all deps test-deps run test unit e2e bench fuzz fuzz-check fuzz-build fuzz-deps fuzz-merge clean format images manifests
all: $(TARGETS)

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -MMD -MP -c $< -o $@

$(BIN)/sluice-broker: $(BROKER_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(BROKER_LIBS)

$(BIN)/sluice-controller: $(CTL_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CTL_LIBS)

# Unit tests: test_ctl_* link the controller's objects, the others the broker's.
$(BIN)/tests/test_ctl_%: tests/unit/test_ctl_%.c $(CTL_LOBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $(LDFLAGS) -o $@ $^ $(CTL_LIBS) -lcmocka

$(BIN)/tests/%: tests/unit/%.c $(BROKER_LOBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $(LDFLAGS) -o $@ $^ $(BROKER_LIBS) -lcmocka

deps:
	@scripts/deps.sh build

test-deps:
	@scripts/deps.sh test

# Start a broker with a local data dir and sensible defaults.
run: deps
	@$(MAKE) --no-print-directory all
	@mkdir -p data
	$(BIN)/sluice-broker --data-dir data --kafka-listen 127.0.0.1:9092 --admin-listen 127.0.0.1:8080

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

e2e: all
	@SLUICE_BIN=$(BIN) tests/e2e/run.sh

# Everything a newcomer needs: dependencies, a sanitizer build, unit and e2e tests, and
# every fuzz target briefly on its committed corpus.
test: test-deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory SANITIZER=address,undefined all unit e2e
	@$(MAKE) --no-print-directory -j$(FUZZ_JOBS) fuzz-build
	@$(MAKE) --no-print-directory fuzz-check

bench: test-deps
	@$(MAKE) --no-print-directory all
	@tests/bench/run.sh $(BIN)

# Container images with buildah (no Docker engine); OCI archives land in build/images/.
images:
	@tests/k8s/build_images.sh $(IMAGE_TAG)

# helm lint/template, rendered-manifest validation, CEL rules (make test runs them too,
# through tests/e2e/test_manifests.py).
manifests:
	@tests/k8s/check_manifests.sh

# libFuzzer targets (tests/fuzz/fuzz_*.c), built by clang against the broker's objects
# compiled with coverage and ASan/UBSan into build/fuzz/. `make fuzz` runs each target
# FUZZ_SECONDS on its seed corpus (tests/fuzz/corpus/<target>/, read-only: new inputs go
# to build/fuzz/corpus/<target>/) and on the inputs that once failed
# (tests/fuzz/regress/<target>/, kept whatever merging drops); `make fuzz-check` is the
# 10 s regression run for CI.
# Crashing inputs land in build/fuzz/crashes/. `make fuzz-merge` minimises the committed
# corpora with what the runs found and any seeds in build/fuzz/seeds/<target>/ (from
# tests/fuzz/make_corpus.py and capture.py); tests/fuzz/README.md has the details.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_BUILD   := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  := -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN)
FUZZ_LOBJ    := $(BROKER_LIB:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES   := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)
FUZZ_BINS    := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/bin/fuzz_%)

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(WARN) -MMD -MP -c $< -o $@

# Per-target link flags: fuzz_frame's scratch connection has neither listener nor server,
# so it wraps what needs them (see the file's header).
FUZZ_LDFLAGS_frame := -Wl,--wrap=conn_protocol,--wrap=kslot_complete,--wrap=conn_abort

$(FUZZ_BUILD)/bin/fuzz_%: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_%.o $(FUZZ_LOBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(FUZZ_LDFLAGS_$*) -o $@ $^ \
		$(BROKER_LIBS) -lcmocka

.SECONDARY: $(FUZZ_LOBJ) $(FUZZ_NAMES:%=$(FUZZ_BUILD)/obj/tests/fuzz/fuzz_%.o)
fuzz-build: fuzz-deps $(FUZZ_BINS)

fuzz-deps:
	@scripts/deps.sh fuzz

# Runs every target for $(1) seconds; stops at the first crash, whose input is kept.
define fuzz_run
	@set -e; mkdir -p $(FUZZ_BUILD)/crashes; for n in $(FUZZ_NAMES); do \
		echo "== fuzz_$$n ($(1) s)"; mkdir -p $(FUZZ_BUILD)/corpus/$$n; \
		UBSAN_OPTIONS=print_stacktrace=1 \
		LSAN_OPTIONS=suppressions=tests/fuzz/lsan.supp:print_suppressions=0 \
		$(FUZZ_BUILD)/bin/fuzz_$$n -max_total_time=$(1) -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_BUILD)/crashes/$$n- $(FUZZ_ARGS) \
			$(FUZZ_BUILD)/corpus/$$n tests/fuzz/corpus/$$n \
			$$(ls -d tests/fuzz/regress/$$n 2>/dev/null); \
	done
endef

fuzz: fuzz-build
	$(call fuzz_run,$(FUZZ_SECONDS))

fuzz-check: fuzz-build
	$(call fuzz_run,10)

# Merges each committed corpus, the inputs runs found and the seeds into a fresh
# directory (libFuzzer -merge=1 keeps only inputs that add coverage), then replaces the
# committed corpus with it.
fuzz-merge: fuzz-build
	@set -e; for n in $(FUZZ_NAMES); do \
		rm -rf $(FUZZ_BUILD)/merged/$$n; mkdir -p $(FUZZ_BUILD)/merged/$$n \
			$(FUZZ_BUILD)/corpus/$$n $(FUZZ_BUILD)/seeds/$$n; \
		LSAN_OPTIONS=suppressions=tests/fuzz/lsan.supp:print_suppressions=0 \
		$(FUZZ_BUILD)/bin/fuzz_$$n -merge=1 $(FUZZ_BUILD)/merged/$$n tests/fuzz/corpus/$$n \
			$(FUZZ_BUILD)/corpus/$$n $(FUZZ_BUILD)/seeds/$$n > $(FUZZ_BUILD)/merged/$$n.log 2>&1 \
			|| { tail -n 30 $(FUZZ_BUILD)/merged/$$n.log; exit 1; }; \
		rm -rf tests/fuzz/corpus/$$n; cp -r $(FUZZ_BUILD)/merged/$$n tests/fuzz/corpus/$$n; \
		echo "fuzz_$$n: $$(ls tests/fuzz/corpus/$$n | wc -l) inputs, $$(du -sk --apparent-size \
			tests/fuzz/corpus/$$n | cut -f1) KiB"; \
	done

format:
	clang-format -i broker/src/*.[ch] controller/src/*.[ch] tests/unit/*.c

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
-include $(shell find $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)
