# ustor top-level Makefile (non-recursive).
#
# Sources are found by directory, so adding a file needs no edit here:
#   <component>/**/*.c        -> libustor.a      (core bdev blobstore blobfs nvme fuse targets)
#   env/dpdk/*.c              -> libustor_env.a  (the DPDK environment, for programs)
#   env/test/*.c              -> libustor_env_test.a (plain-malloc environment, for unit tests)
#   app/NAME/*.c              -> bin/NAME
#   examples/NAME.c           -> examples/NAME
#   bench/NAME/*.c            -> bench/NAME
#   tests/unit/lib/*.c        -> libustor_ut.a   (helpers shared by unit tests)
#   tests/unit/COMP/NAME_ut.c -> test/unit/COMP/NAME_ut (plain-malloc env)
#   tests/env/NAME_test.c     -> test/env/NAME_test  (real DPDK env, cmocka; run
#                                with the unit tests)
# Everything lands under $(BUILDDIR) (default build/); `./configure
# --builddir=DIR` and `make BUILDDIR=DIR` keep several builds side by side.

BUILDDIR ?= build
# One spelling of the build directory, relative inside the tree, however it
# was given: the .d files name their objects by it, so a build made with
# BUILDDIR=$$PWD/build and one made with BUILDDIR=build must not disagree
# (else header changes stop rebuilding the objects the other one compiled).
B := $(patsubst $(CURDIR)/%,%,$(abspath $(BUILDDIR)))
V ?= 0
Q := $(if $(filter 1,$(V)),,@)

NOCONFIG_GOALS := clean distclean help
ifneq ($(filter-out $(NOCONFIG_GOALS),$(or $(MAKECMDGOALS),all)),)
include $(B)/config.mk
endif

# configure runs on demand; pkgdep.sh first installs anything missing.
$(B)/config.mk: configure
	$(Q)scripts/pkgdep.sh --if-missing
	$(Q)./configure --builddir=$(B) $(CONFIGURE_FLAGS)

COMPONENTS := core bdev blobstore blobfs nvme fuse targets
rwildcard = $(foreach d,$(wildcard $(1:=/*)),$(call rwildcard,$d,$2) $(filter $(subst *,%,$2),$d))

LIB_SRCS := $(sort $(foreach c,$(COMPONENTS),$(call rwildcard,$(c),*.c)))
ENV_SRCS := $(sort $(wildcard env/dpdk/*.c))
ENV_TEST_SRCS := $(sort $(wildcard env/test/*.c))
UT_LIB_SRCS := $(sort $(wildcard tests/unit/lib/*.c))
APPS := $(notdir $(patsubst %/,%,$(sort $(dir $(wildcard app/*/*.c)))))
BENCHES := $(notdir $(patsubst %/,%,$(sort $(dir $(wildcard bench/*/*.c)))))
EXAMPLES := $(basename $(notdir $(wildcard examples/*.c)))
UT_SRCS := $(sort $(wildcard tests/unit/*/*_ut.c))
ENVT_SRCS := $(sort $(wildcard tests/env/*_test.c))

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))

LIB := $(B)/lib/libustor.a
ENV_LIB := $(B)/lib/libustor_env.a
ENV_TEST_LIB := $(B)/lib/libustor_env_test.a
UT_LIB := $(B)/lib/libustor_ut.a
APP_BINS := $(addprefix $(B)/bin/,$(APPS))
# bench/fs holds three programs (rules below): fs_meta.c is bench/fs, and
# bfs_io.c and bfs_meta.c (blobfs without FUSE) are bench/bfs_io and bench/bfs_meta.
BENCH_BINS := $(addprefix $(B)/bench/,$(BENCHES) bfs_io bfs_meta)
EXAMPLE_BINS := $(addprefix $(B)/examples/,$(EXAMPLES))
UT_BINS := $(patsubst tests/unit/%.c,$(B)/test/unit/%,$(UT_SRCS))
ENVT_BINS := $(patsubst tests/env/%.c,$(B)/test/env/%,$(ENVT_SRCS))

CPPFLAGS := -Iinclude -I$(B) -D_GNU_SOURCE
CFLAGS := $(BASE_CFLAGS) $(DEP_CFLAGS)
# Programs take every object (RPC methods, modules and log flags register
# themselves from constructors, so nothing may be dropped by the linker).
WHOLE = -Wl,--whole-archive $(1) -Wl,--no-whole-archive
PROG_LIBS := $(call WHOLE,$(LIB) $(ENV_LIB)) $(DEP_LIBS)
UT_LIBS := $(UT_LIB) $(LIB) $(ENV_TEST_LIB) $(DEP_LIBS) $(CMOCKA_LIBS)

.PHONY: build-parallel all lib apps benches examples unit-tests test test-unit test-integration test-vm \
	run install uninstall clean distclean help
.DEFAULT_GOAL := all

all: lib apps benches examples unit-tests
lib: $(LIB) $(ENV_LIB) $(ENV_TEST_LIB)
apps: $(APP_BINS)
benches: $(BENCH_BINS)
examples: $(EXAMPLE_BINS)
unit-tests: $(UT_BINS) $(ENVT_BINS)

$(B)/obj/%.o: %.c $(B)/config.mk
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(EXTRA_CFLAGS_$(firstword $(subst /, ,$<))) -MMD -MP -c -o $@ $<

$(B)/obj/tests/%.o: CPPFLAGS += $(CMOCKA_CFLAGS) -Itests/unit/lib -Ienv/test

define archive
	@mkdir -p $(@D)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar crs $@ $^
endef

$(LIB): $(call obj,$(LIB_SRCS)) ; $(archive)
$(ENV_LIB): $(call obj,$(ENV_SRCS)) ; $(archive)
$(ENV_TEST_LIB): $(call obj,$(ENV_TEST_SRCS)) ; $(archive)
$(UT_LIB): $(call obj,$(UT_LIB_SRCS)) ; $(archive)

define link
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(BASE_LDFLAGS) -o $@ $(filter %.o,$^) $(1)
endef

# Keep objects of programs and tests (make would delete them as intermediates).
# Not .SECONDARY: with it a missing object would not trigger a rebuild.
.PRECIOUS: $(B)/obj/%.o
.SECONDEXPANSION:
$(B)/bin/%: $$(call obj,$$(wildcard app/%/*.c)) $(LIB) $(ENV_LIB) ; $(call link,$(PROG_LIBS))
$(B)/bench/%: $$(call obj,$$(wildcard bench/%/*.c)) $(LIB) $(ENV_LIB) ; $(call link,$(PROG_LIBS))
$(B)/bench/fs: $(call obj,bench/fs/fs_meta.c) $(LIB) $(ENV_LIB) ; $(call link,$(PROG_LIBS))
$(B)/bench/bfs_io: $(call obj,bench/fs/bfs_io.c) $(LIB) $(ENV_LIB) ; $(call link,$(PROG_LIBS))
$(B)/bench/bfs_meta: $(call obj,bench/fs/bfs_meta.c) $(LIB) $(ENV_LIB) ; $(call link,$(PROG_LIBS))
$(B)/examples/%: $(B)/obj/examples/%.o $(LIB) $(ENV_LIB) ; $(call link,$(PROG_LIBS))
# A unit test X_ut.c links its own helpers X_ut_*.c with it (a test too big for one file).
$(B)/test/unit/%: $(B)/obj/tests/unit/%.o $$(call obj,$$(wildcard tests/unit/%_*.c)) $(UT_LIB) $(LIB) \
		  $(ENV_TEST_LIB) ; $(call link,$(UT_LIBS))
$(B)/test/env/%: $(B)/obj/tests/env/%.o $(LIB) $(ENV_LIB) ; $(call link,$(PROG_LIBS) $(CMOCKA_LIBS))

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)

# ---- tests -----------------------------------------------------------------
# `make test` is the README's test command: unit tests, integration tests and
# (where the machine can run QEMU) the VM tests. TESTS=pattern narrows it.
# The build runs in parallel even when the caller gave no -j.
NPROC := $(shell nproc 2>/dev/null || echo 2)
build-parallel: $(B)/config.mk
	$(Q)$(MAKE) --no-print-directory -j$(NPROC) all

test: build-parallel
	$(Q)tests/run.sh --builddir $(B) unit integration vm

test-unit: build-parallel
	$(Q)tests/run.sh --builddir $(B) unit

test-integration: build-parallel
	$(Q)tests/run.sh --builddir $(B) integration

test-vm: build-parallel
	$(Q)tests/run.sh --builddir $(B) vm

# ---- run -------------------------------------------------------------------
RUN_CONFIG ?= etc/ustor.json
run: build-parallel
	$(Q)scripts/run.sh $(B) $(RUN_CONFIG)

# ---- install ---------------------------------------------------------------
DESTDIR ?=
INSTALL_PREFIX = $(DESTDIR)$(CONFIG_PREFIX)
install: lib apps
	install -d $(INSTALL_PREFIX)/bin $(INSTALL_PREFIX)/lib/pkgconfig $(INSTALL_PREFIX)/include/ustor
	install -m 0755 $(APP_BINS) $(INSTALL_PREFIX)/bin/
	install -m 0755 scripts/rpc.py $(INSTALL_PREFIX)/bin/ustor-rpc
	install -d $(INSTALL_PREFIX)/share/ustor/python/rpc
	install -m 0644 scripts/rpc/*.py $(INSTALL_PREFIX)/share/ustor/python/rpc/
	install -m 0644 $(LIB) $(ENV_LIB) $(INSTALL_PREFIX)/lib/
	install -m 0644 include/ustor/*.h $(INSTALL_PREFIX)/include/ustor/
	sed -e 's|@PREFIX@|$(CONFIG_PREFIX)|g' -e 's|@VERSION@|$(CONFIG_VERSION)|g' \
	    -e 's|@DEP_LIBS@|$(DEP_LIBS)|g' -e 's|@DEP_CFLAGS@|$(DEP_CFLAGS)|g' \
	    mk/ustor.pc.in > $(INSTALL_PREFIX)/lib/pkgconfig/ustor.pc

uninstall:
	rm -f $(addprefix $(INSTALL_PREFIX)/bin/,$(APPS) ustor-rpc)
	rm -f $(INSTALL_PREFIX)/lib/libustor.a $(INSTALL_PREFIX)/lib/libustor_env.a
	rm -f $(INSTALL_PREFIX)/lib/pkgconfig/ustor.pc
	rm -rf $(INSTALL_PREFIX)/share/ustor
	rm -rf $(INSTALL_PREFIX)/include/ustor

clean:
	rm -rf $(B)

distclean:
	rm -rf build build-*

help:
	@echo "make [all]          build libraries, programs, benchmarks, examples and unit tests"
	@echo "make test           run unit, integration and VM tests (installs packages if missing)"
	@echo "make test-unit      unit tests only (also test-integration, test-vm)"
	@echo "make run            start ustord in the foreground with $(RUN_CONFIG)"
	@echo "make install        install under the configured prefix (DESTDIR honoured)"
	@echo "make BUILDDIR=DIR   use another build directory (./configure --builddir=DIR)"
