/*
 * bench/bench_util.h: the few chores every benchmark program repeats -
 * the app options every benchmark runs with, reading a bounded number from
 * the command line and handing the app framework a JSON config through a
 * temporary file. Private to bench/;
 * static inline so that each program takes only what it uses.
 */
#ifndef USTOR_BENCH_UTIL_H
#define USTOR_BENCH_UTIL_H

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ustor/app.h"
#include "ustor/log.h"

/*
 * What the benchmarks measure with: reactors on core_mask that never
 * sleep, no hugepages (comparable on any machine), no RPC server, warnings
 * only. Memory is left to the caller (mem_size_mb 0: the framework's default).
 */
static inline void bench_app_opts_init(struct ust_app_opts *opts, const char *name,
				       const char *core_mask)
{
	ust_app_opts_init(opts, name);
	opts->core_mask = core_mask;
	opts->no_huge = true;
	opts->rpc_addr = NULL;
	opts->poll_mode = UST_POLL_ALWAYS;
	opts->log_level = UST_LOG_WARN;
	opts->mem_size_mb = 0;
}

/* A decimal number in [min, max] into *out, or -EINVAL with a message naming prog. */
static inline int bench_parse_u64(const char *prog, const char *arg, uint64_t min, uint64_t max,
				  uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || arg[0] == '-' || v < min || v > max) {
		fprintf(stderr, "%s: '%s' is not a number in [%" PRIu64 ", %" PRIu64 "]\n", prog,
			arg, min, max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/*
 * Write the len bytes of cfg to a new file made from path (a mkstemp
 * template, rewritten in place with the file's name). 0 or -errno.
 */
static inline int bench_write_config(char *path, const char *cfg, int len)
{
	int fd;

	if (len < 0) {
		return -EINVAL;
	}
	fd = mkstemp(path);
	if (fd < 0) {
		return -errno;
	}
	if (write(fd, cfg, (size_t)len) != len) {
		close(fd);
		unlink(path);
		return -EIO;
	}
	close(fd);
	return 0;
}

#endif /* USTOR_BENCH_UTIL_H */
