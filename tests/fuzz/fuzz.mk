# Builds and runs the libFuzzer harnesses with clang (make fuzz, make
# fuzz-run from the top Makefile, which passes the variables below). Kept out
# of Makefile.am: the harnesses and the library objects are compiled with
# FUZZ_CXX and -fsanitize=fuzzer-no-link,address,undefined, not with $(CXX).
#
#   FUZZ_CXX      clang++ (configure finds clang++-14 or clang++)
#   top_srcdir    the source tree;  top_builddir  the build tree (config.h)
#   FUZZ_DEP_CFLAGS / FUZZ_DEP_LIBS  libext2fs, com_err, zlib, zstd, blkid (and nlohmann-json headers)
#   FUZZ_SECONDS  how long fuzz-run runs each fuzzer (default 60)

FUZZ_SECONDS ?= 60
FUZZERS = fuzz_qcow2_header fuzz_qcow2_reader fuzz_metadata_scan fuzz_qcow2_inspect fuzz_stream_reader

out := $(top_builddir)/tests/fuzz
SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CXXFLAGS = -std=c++20 -g -O1 -fno-omit-frame-pointer $(SAN) -D_FILE_OFFSET_BITS=64 \
	-I$(top_srcdir)/lib -I$(top_srcdir)/tests/fuzz -I$(top_builddir) $(FUZZ_DEP_CFLAGS)

# Every library source, whatever new files the libraries gain.
LIB_SOURCES := $(sort $(wildcard $(top_srcdir)/lib/util/*.cc $(top_srcdir)/lib/qcow2/*.cc \
	$(top_srcdir)/lib/e2img/*.cc))
LIB_OBJECTS := $(patsubst $(top_srcdir)/%.cc,$(out)/obj/%.o,$(LIB_SOURCES))
COMMON_OBJECTS := $(out)/obj/tests/fuzz/fuzz_util.o

all: $(addprefix $(out)/bin/,$(FUZZERS))

$(out)/obj/%.o: $(top_srcdir)/%.cc
	@mkdir -p $(dir $@)
	@echo "  FUZZCXX  $*.o"
	@$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(out)/bin/%: $(out)/obj/tests/fuzz/%.o $(COMMON_OBJECTS) $(LIB_OBJECTS)
	@mkdir -p $(dir $@)
	@echo "  FUZZLD   $*"
	@$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer $^ $(FUZZ_DEP_LIBS) -lpthread -o $@

-include $(LIB_OBJECTS:.o=.d) $(COMMON_OBJECTS:.o=.d) $(FUZZERS:%=$(out)/obj/tests/fuzz/%.d)

# Runs each fuzzer for FUZZ_SECONDS on a scratch copy of its seed corpus
# (new inputs go to the scratch copy, the seeds stay as they are). A crash,
# leak, timeout or out-of-memory fails the target and leaves the input in
# tests/fuzz/artifacts/.
run: all
	@set -e; mkdir -p $(out)/artifacts; \
	for f in $(FUZZERS); do \
	  work=$(out)/work/$$f; rm -rf $$work; mkdir -p $$work; \
	  echo "fuzz-run: $$f for $(FUZZ_SECONDS)s"; \
	  $(out)/bin/$$f -max_total_time=$(FUZZ_SECONDS) -timeout=20 -rss_limit_mb=4096 -malloc_limit_mb=1024 \
	    -max_len=1048576 -print_final_stats=1 \
	    -artifact_prefix=$(out)/artifacts/$$f- $$work $(top_srcdir)/tests/fuzz/corpus/$$f \
	    > $(out)/$$f.log 2>&1 || { tail -n 60 $(out)/$$f.log; echo "fuzz-run: $$f FAILED"; exit 1; }; \
	  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' $(out)/$$f.log | tr '\n' ' '; echo; \
	  rm -rf $$work; \
	done

# Replays every seed and every regression input once (no fuzzing).
replay: all
	@set -e; for f in $(FUZZERS); do \
	  $(out)/bin/$$f -runs=0 $(top_srcdir)/tests/fuzz/corpus/$$f > $(out)/$$f-replay.log 2>&1 || \
	    { tail -n 40 $(out)/$$f-replay.log; echo "fuzz-replay: $$f FAILED"; exit 1; }; \
	  echo "fuzz-replay: $$f ok"; \
	done

.PHONY: all run replay
# Keep the objects (they are intermediate files of a chain of pattern rules).
.SECONDARY:
