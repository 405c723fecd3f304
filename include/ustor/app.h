/*
 * Application framework: environment, reactors, subsystems, config replay,
 * the RPC server and clean shutdown, for ustord and every other program.
 *
 * ust_app_start() blocks: it brings up the environment and one reactor per
 * core of the mask, initialises every registered subsystem in dependency
 * order, replays the config file, starts the RPC server and then calls the
 * program's start function on the app thread. ust_app_stop() (or SIGINT /
 * SIGTERM) runs the program's shutdown hook, closes the RPC server, finishes
 * every subsystem in reverse order, stops the reactors and returns from
 * ust_app_start() with the code given.
 */
#ifndef USTOR_APP_H
#define USTOR_APP_H

#include <stdbool.h>
#include <stdint.h>
#include <getopt.h>

#include <jansson.h>

#include "ustor/log.h"

#ifdef __cplusplus
extern "C" {
#endif

enum ust_poll_mode {
	UST_POLL_ADAPTIVE, /* poll while busy, sleep when idle (default) */
	UST_POLL_ALWAYS,   /* never sleep: lowest latency, 100% CPU per core */
};

struct ust_app_opts {
	const char *name;
	const char *core_mask;   /* -m; default "0x1" */
	const char *rpc_addr;    /* -r; NULL: no RPC server */
	const char *config_file; /* -c */
	const char *file_prefix;
	/* --worker-mask: where workers (ustor/worker.h) may run; NULL: every CPU outside core_mask */
	const char *worker_mask;
	int mem_size_mb;         /* --mem-size */
	bool no_huge;            /* --no-huge */
	bool pci;                /* scan the PCI bus */
	enum ust_poll_mode poll_mode;
	enum ust_log_level log_level;
	/* Called on the app thread when shutdown starts, before subsystems finish. */
	void (*shutdown_cb)(void *ctx);
	void *shutdown_ctx;
};

void ust_app_opts_init(struct ust_app_opts *opts, const char *name);

/*
 * Parse the common options (-m -r -c --mem-size --no-huge --file-prefix
 * --poll-mode -L/--log-flag --log-level --worker-mask -h) plus the program's own
 * (extra_short in getopt form, extra_long ending in a zeroed entry; either may
 * be NULL). parse(ch, optarg, ctx) handles the program's options, returning
 * 0 or a negative errno. Returns 0, or 1 if help was printed, or -EINVAL.
 */
int ust_app_parse_args(int argc, char **argv, struct ust_app_opts *opts, const char *extra_short,
		       const struct option *extra_long, int (*parse)(int ch, char *arg, void *ctx),
		       void (*usage)(void), void *ctx);
/* The common options' help text. */
void ust_app_usage(void);

typedef void (*ust_app_start_fn)(void *ctx);

/* Returns the code passed to ust_app_stop(), or a negative errno on start-up failure. */
int ust_app_start(const struct ust_app_opts *opts, ust_app_start_fn start, void *ctx);
/* From any thread: begin shutdown with rc. Idempotent. */
void ust_app_stop(int rc);
bool ust_app_is_shutting_down(void);
const struct ust_app_opts *ust_app_get_opts(void);

/* Write the running configuration (every subsystem's calls) as JSON. */
json_t *ust_app_config_json(void);

/* ---- subsystems --------------------------------------------------------- */

typedef void (*ust_subsystem_done_fn)(int rc, void *ctx);

/*
 * A part of the stack with global state: initialised at start-up after the
 * subsystems it depends on, finished at shutdown before them. All hooks run
 * on the app thread and may complete asynchronously by calling done.
 */
struct ust_subsystem {
	const char *name;
	void (*init)(ust_subsystem_done_fn done, void *ctx);
	void (*fini)(ust_subsystem_done_fn done, void *ctx);
	/* Append {"method":..,"params":..} objects that recreate the state. */
	void (*write_config_json)(json_t *calls);
	/* Private to the framework. */
	struct ust_subsystem *next;
	bool initialized;
};

void ust_subsystem_register(struct ust_subsystem *subsystem);
/* name is initialised after (and finished before) depends_on. */
void ust_subsystem_add_dependency(const char *name, const char *depends_on);
struct ust_subsystem *ust_subsystem_find(const char *name);

#define UST_SUBSYSTEM_REGISTER(S)                                                          \
	__attribute__((constructor)) static void ust_subsystem_register_##S(void)          \
	{                                                                                   \
		ust_subsystem_register(&S);                                                 \
	}
#define UST_SUBSYSTEM_DEPEND(NAME, DEPENDS_ON)                                             \
	__attribute__((constructor)) static void ust_subsystem_depend_##NAME##_##DEPENDS_ON(void) \
	{                                                                                   \
		ust_subsystem_add_dependency(#NAME, #DEPENDS_ON);                           \
	}

/* ---- config ------------------------------------------------------------- */

typedef void (*ust_config_done_fn)(int rc, void *ctx);
/*
 * Replay a config ({"subsystems":[{"subsystem":..,"config":[{"method":..,
 * "params":..}]}]}) on the app thread, one call at a time, in order. Stops at
 * the first failing entry with an error naming subsystem, index and method.
 */
void ust_config_load_json(const json_t *config, ust_config_done_fn done, void *ctx);
void ust_config_load_file(const char *path, ust_config_done_fn done, void *ctx);

#ifdef __cplusplus
}
#endif

#endif
