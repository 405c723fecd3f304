/*
 * Command-line options shared by every ustor program (-m -r -c --mem-size
 * --no-huge --file-prefix --poll-mode -L --log-level --worker-mask -h), merged with the
 * program's own options.
 *
 * Guarantees: every bad value is rejected with a message naming the option
 * and the value, and the parser returns -EINVAL instead of guessing; stray
 * positional arguments are errors; parsing can be repeated (tests) because
 * getopt's state is reset first.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/app.h"
#include "ustor/cpuset.h"
#include "ustor/log.h"
#include "ustor/rpc.h"

/* Long-only options get values above any character a program may use. */
enum {
	OPT_MEM_SIZE = 0x1000,
	OPT_NO_HUGE,
	OPT_FILE_PREFIX,
	OPT_POLL_MODE,
	OPT_LOG_LEVEL,
	OPT_WORKER_MASK,
};

#define COMMON_SHORT "m:r:c:L:h"

static const struct option g_common_long[] = {
	{"cpumask", required_argument, NULL, 'm'},
	{"rpc-socket", required_argument, NULL, 'r'},
	{"config", required_argument, NULL, 'c'},
	{"mem-size", required_argument, NULL, OPT_MEM_SIZE},
	{"no-huge", no_argument, NULL, OPT_NO_HUGE},
	{"file-prefix", required_argument, NULL, OPT_FILE_PREFIX},
	{"poll-mode", required_argument, NULL, OPT_POLL_MODE},
	{"log-flag", required_argument, NULL, 'L'},
	{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	{"worker-mask", required_argument, NULL, OPT_WORKER_MASK},
	{"help", no_argument, NULL, 'h'},
};
#define COMMON_LONG_COUNT (sizeof(g_common_long) / sizeof(g_common_long[0]))

void ust_app_usage(void)
{
	printf("Common options:\n"
	       " -m, --cpumask MASK      cores to run reactors on: hex mask (0x3) or list\n"
	       "                         ([0-3,6]); default 0x1\n"
	       " -r, --rpc-socket PATH   JSON-RPC UNIX socket (default %s)\n"
	       " -c, --config FILE       replay a JSON config at start-up\n"
	       "     --mem-size MB       memory to reserve up front\n"
	       "     --no-huge           run without hugepages (IOVA = VA; no PCI devices)\n"
	       "     --file-prefix NAME  hugepage file prefix (several processes side by side)\n"
	       "     --poll-mode MODE    adaptive (sleep when idle, default) or always\n"
	       " -L, --log-flag FLAG     enable a component's debug log (repeatable)\n"
	       "     --log-level LEVEL   error, warning, notice (default), info or debug\n"
	       "     --worker-mask MASK  CPUs for worker threads, which make large copies off\n"
	       "                         the reactors; default every CPU outside -m, 0 none\n"
	       " -h, --help              show this help\n",
	       UST_DEFAULT_RPC_ADDR);
}

/* Any mask, empty ("0") included: the CPUs in the core mask are dropped when a worker starts. */
static int parse_worker_mask(const char *arg, struct ust_app_opts *opts)
{
	struct ust_cpuset set;

	if (ust_cpuset_parse(&set, arg) != 0) {
		fprintf(stderr, "invalid worker mask '%s' (expected e.g. 0xc, [2-3] or 0)\n", arg);
		return -EINVAL;
	}
	opts->worker_mask = arg;
	return 0;
}

static int parse_core_mask(const char *arg, struct ust_app_opts *opts)
{
	struct ust_cpuset set;

	if (ust_cpuset_parse(&set, arg) != 0 || ust_cpuset_count(&set) == 0) {
		fprintf(stderr, "invalid core mask '%s' (expected e.g. 0x3 or [0-1])\n", arg);
		return -EINVAL;
	}
	opts->core_mask = arg;
	return 0;
}

static int parse_mem_size(const char *arg, struct ust_app_opts *opts)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || v <= 0 || v > INT_MAX) {
		fprintf(stderr, "invalid --mem-size '%s' (expected a positive number of MB)\n",
			arg);
		return -EINVAL;
	}
	opts->mem_size_mb = (int)v;
	return 0;
}

static int parse_poll_mode(const char *arg, struct ust_app_opts *opts)
{
	if (strcmp(arg, "adaptive") == 0) {
		opts->poll_mode = UST_POLL_ADAPTIVE;
	} else if (strcmp(arg, "always") == 0) {
		opts->poll_mode = UST_POLL_ALWAYS;
	} else {
		fprintf(stderr, "invalid --poll-mode '%s' (expected adaptive or always)\n", arg);
		return -EINVAL;
	}
	return 0;
}

static int parse_log_level(const char *arg, struct ust_app_opts *opts)
{
	enum ust_log_level level;

	if (ust_log_level_from_str(arg, &level) != 0) {
		fprintf(stderr, "invalid --log-level '%s' (expected error, warning, notice, "
				"info or debug)\n", arg);
		return -EINVAL;
	}
	opts->log_level = level;
	return 0;
}

static int parse_log_flag(const char *arg)
{
	if (ust_log_set_flag(arg) != 0) {
		fprintf(stderr, "unknown log flag '%s'\n", arg);
		return -EINVAL;
	}
	return 0;
}

static int parse_common(int ch, char *arg, struct ust_app_opts *opts)
{
	switch (ch) {
	case 'm':
		return parse_core_mask(arg, opts);
	case 'r':
		opts->rpc_addr = arg;
		return 0;
	case 'c':
		opts->config_file = arg;
		return 0;
	case 'L':
		return parse_log_flag(arg);
	case OPT_MEM_SIZE:
		return parse_mem_size(arg, opts);
	case OPT_NO_HUGE:
		opts->no_huge = true;
		return 0;
	case OPT_FILE_PREFIX:
		opts->file_prefix = arg;
		return 0;
	case OPT_POLL_MODE:
		return parse_poll_mode(arg, opts);
	case OPT_LOG_LEVEL:
		return parse_log_level(arg, opts);
	case OPT_WORKER_MASK:
		return parse_worker_mask(arg, opts);
	}
	return -ENOTSUP;
}

static size_t count_long(const struct option *opts)
{
	size_t n = 0;

	while (opts != NULL && opts[n].name != NULL) {
		n++;
	}
	return n;
}

static struct option *merge_long(const struct option *extra)
{
	size_t n_extra = count_long(extra);
	struct option *all = calloc(COMMON_LONG_COUNT + n_extra + 1, sizeof(*all));

	if (all == NULL) {
		return NULL;
	}
	memcpy(all, g_common_long, sizeof(g_common_long));
	if (n_extra > 0) {
		memcpy(all + COMMON_LONG_COUNT, extra, n_extra * sizeof(*extra));
	}
	return all;
}

static void print_help(void (*usage)(void))
{
	if (usage != NULL) {
		usage();
	}
	ust_app_usage();
}

static int parse_loop(int argc, char **argv, struct ust_app_opts *opts, const char *shortopts,
		      const struct option *longopts, int (*parse)(int ch, char *arg, void *ctx),
		      void (*usage)(void), void *ctx)
{
	int ch, rc;

	while ((ch = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		if (ch == 'h') {
			print_help(usage);
			return 1;
		}
		if (ch == '?' || ch == ':') {
			fprintf(stderr, "see '%s --help'\n", argv[0]);
			return -EINVAL;
		}
		rc = parse_common(ch, optarg, opts);
		if (rc == -ENOTSUP) {
			rc = parse != NULL ? parse(ch, optarg, ctx) : -EINVAL;
		}
		if (rc != 0) {
			return rc < 0 ? rc : -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "unexpected argument '%s'; see '%s --help'\n", argv[optind],
			argv[0]);
		return -EINVAL;
	}
	return 0;
}

int ust_app_parse_args(int argc, char **argv, struct ust_app_opts *opts, const char *extra_short,
		       const struct option *extra_long, int (*parse)(int ch, char *arg, void *ctx),
		       void (*usage)(void), void *ctx)
{
	struct option *longopts;
	char *shortopts;
	int rc;

	if (opts == NULL || argv == NULL) {
		return -EINVAL;
	}
	/* A leading ':' would change getopt's error reporting; the program's go after ours. */
	if (asprintf(&shortopts, "%s%s", COMMON_SHORT, extra_short != NULL ? extra_short : "") < 0) {
		return -ENOMEM;
	}
	longopts = merge_long(extra_long);
	if (longopts == NULL) {
		free(shortopts);
		return -ENOMEM;
	}
	optind = 0; /* 0 also resets glibc's internal state for a fresh parse */
	rc = parse_loop(argc, argv, opts, shortopts, longopts, parse, usage, ctx);
	free(longopts);
	free(shortopts);
	return rc;
}
