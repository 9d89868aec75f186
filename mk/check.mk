# Fuzzing and sanitizers
#
#   make fuzz               every libFuzzer target for FUZZ_SECONDS (60)
#   make fuzz-key           one target (key auth record time import_csv
#                           import_jsonl fields), for FUZZ_SECONDS
#   make fuzz-build         build the fuzzers only (clang)
#   make fuzz-replay        run each fuzzer once over its corpus
#   make fuzz-seed          add the seeds made by fuzz/seed.c to fuzz/corpus
#   make fuzz-merge         minimize fuzz/corpus/<target> with what the
#                           last runs found (then review and commit it)
#   make test-asan          apikeyctl and the unit tests built with ASan
#                           and UBSan, and the apikeyctl tests run on them
#   make test-valgrind      the integration tests, nginx under memcheck
#
# Each has its own build directory ($(B)/fuzz, $(B)/asan,
# $(B)/valgrind), so that a "make" running at the same time cannot
# change the binaries under test.  The fuzzers write what they find to
# $(B)/fuzz/corpus/<target>, never to fuzz/corpus, which only fuzz-merge
# changes; a crash is saved as
# $(B)/fuzz/crash-<target>-<sha1>, and replayed with
# "$(B)/fuzz/fuzz_<target> $(B)/fuzz/crash-<target>-<sha1>".

FUZZ_CC ?=          clang
FUZZ_SECONDS ?=     60
FUZZ_DIR =          $(B)/fuzz
FUZZ_TARGETS =      key auth record time import_csv import_jsonl fields
FUZZ_BINS =         $(addprefix $(FUZZ_DIR)/fuzz_,$(FUZZ_TARGETS))
FUZZ_CFLAGS =       -g -O1 -fno-omit-frame-pointer \
                    -fsanitize=fuzzer,address,undefined \
                    -fno-sanitize-recover=undefined \
                    -Wall -Wextra -Wno-unused-parameter -I$(CORE_DIR)
FUZZ_LIBS =         -llmdb -lsodium -lz
FUZZ_DEPS =         deps-fuzz

# the longest input worth trying: a little past each format's limit

FUZZ_MAX_LEN_key =          300
FUZZ_MAX_LEN_auth =         600
FUZZ_MAX_LEN_record =       1600
FUZZ_MAX_LEN_time =         80
FUZZ_MAX_LEN_import_csv =   4096
FUZZ_MAX_LEN_import_jsonl = 4096
FUZZ_MAX_LEN_fields =       1024

# apikeyctl reports every row it skips on stderr: closed (libFuzzer keeps
# its own reports on a copy of it)

FUZZ_OPTS_import_csv =      -close_fd_mask=2 -dict=fuzz/import.dict
FUZZ_OPTS_import_jsonl =    -close_fd_mask=2 -dict=fuzz/import.dict

FUZZ_ENV =          ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
                    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

ASAN_DIR =          $(B)/asan
ASAN_CFLAGS =       -O1 -g -fno-omit-frame-pointer \
                    -fsanitize=address,undefined \
                    -fno-sanitize-recover=undefined
ASAN_LOGS =         $(CURDIR)/$(ASAN_DIR)/logs
ASAN_OPTS =         halt_on_error=1:detect_leaks=1:exitcode=99
UBSAN_OPTS =        halt_on_error=1:print_stacktrace=1:exitcode=99

# the tests that mostly run apikeyctl, and the unit tests

ASAN_TESTS ?=       $(sort $(wildcard t/apikeyctl*.t)) \
                    $(wildcard t/apikey_import.t t/apikey_hash.t \
                        t/apikey_files.t t/apikey_revoke.t \
                        t/apikey_secrets.t t/apikey_lifecycle.t \
                        t/apikey_db_missing.t t/core_unit.t)

# every integration test that starts nginx: not the build and demo ones,
# nor the unit tests (already under ASan)

VALGRIND_TESTS ?=   $(filter-out t/build_compat.t t/demo.t t/core_unit.t \
                        t/fuzz_corpus.t t/apikeyctl%, \
                        $(sort $(wildcard t/*.t)))


.PHONY: deps-fuzz deps-valgrind fuzz fuzz-build fuzz-replay fuzz-merge \
        fuzz-seed \
        fuzz-smoke-build test-asan test-valgrind \
        $(addprefix fuzz-,$(FUZZ_TARGETS))


deps-fuzz:
	@tools/deps.sh fuzz

deps-valgrind:
	@tools/deps.sh valgrind


# fuzzing

fuzz-build: $(FUZZ_BINS)

$(FUZZ_DIR)/fuzz_%: fuzz/fuzz_%.c $(CORE_DEPS) | $(FUZZ_DEPS)
	mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(CORE_SRC) $(FUZZ_LIBS)

$(FUZZ_DIR)/fuzz_import_csv: fuzz/fuzz_import.c $(CTL_DEPS) | $(FUZZ_DEPS)
	mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -I$(CTL_DIR) -Dmain=actl_main \
	    -DAKF_JSONL=0 -o $@ $< $(CTL_SRCS) $(CORE_SRC) $(CTL_LIBS)

$(FUZZ_DIR)/fuzz_import_jsonl: fuzz/fuzz_import.c $(CTL_DEPS) | $(FUZZ_DEPS)
	mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -I$(CTL_DIR) -Dmain=actl_main \
	    -DAKF_JSONL=1 -o $@ $< $(CTL_SRCS) $(CORE_SRC) $(CTL_LIBS)

fuzz: $(addprefix fuzz-,$(FUZZ_TARGETS))
	@echo "fuzz: $(FUZZ_TARGETS): $(FUZZ_SECONDS) s each, no crash"

$(addprefix fuzz-,$(FUZZ_TARGETS)): fuzz-%: $(FUZZ_DIR)/fuzz_%
	@mkdir -p $(FUZZ_DIR)/corpus/$* fuzz/corpus/$*
	@echo "fuzz: $* for $(FUZZ_SECONDS) s"
	$(FUZZ_ENV) $(FUZZ_DIR)/fuzz_$* -max_total_time=$(FUZZ_SECONDS) \
	    -max_len=$(FUZZ_MAX_LEN_$*) -timeout=10 -rss_limit_mb=2048 \
	    -print_final_stats=1 $(FUZZ_OPTS_$*) \
	    -artifact_prefix=$(FUZZ_DIR)/crash-$*- \
	    $(FUZZ_DIR)/corpus/$* fuzz/corpus/$* \
	    > $(FUZZ_DIR)/$*.log 2>&1 \
	    || { tail -n 60 $(FUZZ_DIR)/$*.log; exit 1; }
	@grep -E '^(Done|stat::number_of_executed_units|#[0-9]+ +DONE)' \
	    $(FUZZ_DIR)/$*.log | tr '\n' ' '; echo

# the seeds of fuzz/corpus: real keys, records and rows, from the core

fuzz-seed: fuzz/seed.c $(CORE_DEPS) | deps
	mkdir -p $(FUZZ_DIR)
	$(CC) $(CFLAGS) $(WARN) -I$(CORE_DIR) -o $(FUZZ_DIR)/seed fuzz/seed.c \
	    $(CORE_SRC) $(FUZZ_LIBS)
	mkdir -p fuzz/corpus
	$(FUZZ_DIR)/seed fuzz/corpus

# the corpus alone, no mutation: what t/fuzz_corpus.t does

define fuzz_replay
	@rm -rf $(FUZZ_DIR)/replay && mkdir -p $(FUZZ_DIR)/replay
	@printf 'fuzz-replay: %s: ' $(1)
	@$(FUZZ_ENV) $(FUZZ_DIR)/fuzz_$(1) -runs=0 $(FUZZ_OPTS_$(1)) \
	    $(FUZZ_DIR)/replay fuzz/corpus/$(1) > $(FUZZ_DIR)/replay.log 2>&1 \
	    || { cat $(FUZZ_DIR)/replay.log; exit 1; }
	@tail -n 1 $(FUZZ_DIR)/replay.log

endef

fuzz-replay: $(FUZZ_BINS)
	$(foreach t,$(FUZZ_TARGETS),$(call fuzz_replay,$(t)))

# keep the seeds, and the smallest set of inputs that covers what they
# do not and the repository's corpus and the last runs did

define fuzz_merge
	@mkdir -p $(FUZZ_DIR)/corpus/$(1)
	@rm -rf fuzz/corpus/$(1).new && mkdir fuzz/corpus/$(1).new
	@cp fuzz/corpus/$(1)/seed-* fuzz/corpus/$(1).new/ 2>/dev/null || :
	@$(FUZZ_ENV) $(FUZZ_DIR)/fuzz_$(1) -merge=1 \
	    -max_len=$(FUZZ_MAX_LEN_$(1)) $(FUZZ_OPTS_$(1)) \
	    fuzz/corpus/$(1).new fuzz/corpus/$(1) $(FUZZ_DIR)/corpus/$(1) \
	    > $(FUZZ_DIR)/merge-$(1).log 2>&1 \
	    || { tail -n 30 $(FUZZ_DIR)/merge-$(1).log; exit 1; }
	@rm -rf fuzz/corpus/$(1) && mv fuzz/corpus/$(1).new fuzz/corpus/$(1)
	@echo "fuzz-merge: $(1): $$(ls fuzz/corpus/$(1) | wc -l) inputs"

endef

fuzz-merge: $(FUZZ_BINS)
	$(foreach t,$(FUZZ_TARGETS),$(call fuzz_merge,$(t)))
	@du -sh fuzz/corpus

# for "make test": the fuzzers when clang can build them (then no
# package is installed), for t/fuzz_corpus.t to replay their corpus;
# without clang that test skips

fuzz-smoke-build:
	@if command -v $(FUZZ_CC) >/dev/null 2>&1 \
	    && echo 'int LLVMFuzzerTestOneInput(const char *d, long n) \
	             { return 0; }' \
	       | $(FUZZ_CC) -fsanitize=fuzzer -x c -o /dev/null - 2>/dev/null; \
	then \
	    $(MAKE) --no-print-directory FUZZ_DEPS= $(FUZZ_BINS); \
	else \
	    echo "fuzz: no $(FUZZ_CC) with -fsanitize=fuzzer;" \
	         "t/fuzz_corpus.t will skip"; \
	fi

test: fuzz-smoke-build


# ASan and UBSan

$(ASAN_DIR)/apikeyctl: $(CTL_DEPS) | deps
	mkdir -p $(ASAN_DIR)
	$(CC) $(ASAN_CFLAGS) $(WARN) -I$(CORE_DIR) -o $@ $(CTL_SRCS) \
	    $(CORE_SRC) $(CTL_LIBS)

$(ASAN_DIR)/core_test: t/unit/core_test.c $(CORE_DEPS) | deps-test
	mkdir -p $(ASAN_DIR)
	$(CC) $(ASAN_CFLAGS) $(WARN) -I$(CORE_DIR) -o $@ t/unit/core_test.c \
	    $(CORE_SRC) -llmdb -lsodium -lz -lcmocka

# the module itself is the normal one: nginx is not built with ASan

$(ASAN_DIR)/ngx_http_apikey_module.so: $(MODULE)
	mkdir -p $(ASAN_DIR)
	cp $(MODULE) $@

# a report goes to $(ASAN_LOGS)/<tool>.<pid> and is an error even when
# the test expected apikeyctl to fail: exit code 99 cannot hide in 1

test-asan: deps-test $(ASAN_DIR)/apikeyctl $(ASAN_DIR)/core_test \
           $(ASAN_DIR)/ngx_http_apikey_module.so
	rm -rf $(ASAN_LOGS)
	mkdir -p $(ASAN_LOGS)
	ASAN_OPTIONS=$(ASAN_OPTS):log_path=$(ASAN_LOGS)/asan \
	UBSAN_OPTIONS=$(UBSAN_OPTS):log_path=$(ASAN_LOGS)/ubsan \
	APIKEY_BUILD=$(CURDIR)/$(ASAN_DIR) TEST_NGINX_BINARY=$(NGINX_BIN) \
	    prove -I t/lib $(ASAN_TESTS)
	@if [ -n "$$(ls -A $(ASAN_LOGS))" ]; then \
	    cat $(ASAN_LOGS)/*; \
	    echo "test-asan: sanitizer reports in $(ASAN_LOGS)"; exit 1; \
	fi
	@echo "test-asan: no sanitizer report"


# valgrind: nginx runs copies of the module and apikeyctl, so that a
# rebuild of $(B) by a "make" running meanwhile cannot change the .so
# under the workers

VALGRIND_DIR =      $(B)/valgrind

$(VALGRIND_DIR)/ngx_http_apikey_module.so: $(MODULE)
	mkdir -p $(VALGRIND_DIR)
	cp $(MODULE) $@

$(VALGRIND_DIR)/apikeyctl: $(APIKEYCTL)
	mkdir -p $(VALGRIND_DIR)
	cp $(APIKEYCTL) $@

test-valgrind: deps-test deps-valgrind \
               $(VALGRIND_DIR)/ngx_http_apikey_module.so \
               $(VALGRIND_DIR)/apikeyctl
	TEST_NGINX_VALGRIND=1 APIKEY_BUILD=$(CURDIR)/$(VALGRIND_DIR) \
	TEST_NGINX_BINARY=$(NGINX_BIN) prove -I t/lib $(VALGRIND_TESTS)
