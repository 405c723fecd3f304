/*
 * The application life cycle: ust_app_start() brings up the environment and
 * the reactors, then runs start-up on the app thread (subsystems in
 * dependency order, config replay, RPC server, the program's start
 * function); ust_app_stop() or SIGINT/SIGTERM runs the shutdown sequence
 * (program hook, RPC server closed, subsystems finished in reverse order,
 * every thread exited) and ust_app_start() returns.
 *
 * Guarantees: start-up and shutdown are each one state machine on the app
 * thread (app_step), so every step runs after the previous one completed,
 * even when a step completes asynchronously. A stop requested while start-up
 * is still running takes effect at the next step boundary, never in the
 * middle of a step. Any start-up failure logs the reason, shuts down what
 * was brought up and makes ust_app_start() return a negative errno. Signal
 * handlers only set a flag and write an eventfd; a second signal during a
 * shutdown that does not finish forces the process out (removing the RPC
 * socket) with a message.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ustor/app.h"
#include "ustor/cpuset.h"
#include "ustor/env.h"
#include "ustor/log.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"
#include "ustor/worker.h"

#include "app_internal.h"

enum app_state {
	APP_STATE_INIT_SUBSYSTEMS,
	APP_STATE_LOAD_CONFIG,
	APP_STATE_LISTEN,
	APP_STATE_RUN,
	APP_STATE_RUNNING, /* start-up done; waiting for a stop */
	APP_STATE_SHUTDOWN_HOOK,
	APP_STATE_CLOSE_RPC,
	APP_STATE_FINI_SUBSYSTEMS,
	APP_STATE_STOP_THREADS,
	APP_STATE_DONE,
};

static struct {
	struct ust_app_opts opts;
	ust_app_start_fn start;
	void *start_ctx;
	struct ust_thread *app_thread;
	enum app_state state;
	bool waiting;      /* an asynchronous step is in flight */
	bool start_called; /* the program's start function ran */
	bool listening;
	int rc;
	atomic_bool active;
	atomic_bool stop_requested;
	atomic_int pending_signal;
	atomic_int signal_count;
	/* For the forced exit from the signal handler (no allocation there). */
	char socket_path[256];
	atomic_bool socket_live;
	struct sigaction old_int, old_term, old_pipe;
} g_app;

void ust_app_opts_init(struct ust_app_opts *opts, const char *name)
{
	memset(opts, 0, sizeof(*opts));
	opts->name = name != NULL ? name : "ustor";
	opts->core_mask = "0x1";
	opts->rpc_addr = UST_DEFAULT_RPC_ADDR;
	opts->poll_mode = UST_POLL_ADAPTIVE;
	opts->log_level = UST_LOG_NOTICE;
}

const struct ust_app_opts *ust_app_get_opts(void)
{
	return atomic_load(&g_app.active) ? &g_app.opts : NULL;
}

bool ust_app_is_shutting_down(void)
{
	return atomic_load(&g_app.stop_requested);
}

/* ---- the state machine -------------------------------------------------- */

static void app_step(void);

static void app_fail(int rc)
{
	bool expected = false;

	if (atomic_compare_exchange_strong(&g_app.stop_requested, &expected, true)) {
		g_app.rc = rc;
	}
	g_app.state = APP_STATE_SHUTDOWN_HOOK;
}

static void app_async_done(int rc, void *ctx)
{
	g_app.waiting = false;
	if (rc != 0 && g_app.state <= APP_STATE_RUN) {
		app_fail(rc < 0 ? rc : -rc);
	}
	app_step();
}

/* At each start-up boundary: a stop asked for meanwhile wins. */
static bool app_startup_interrupted(void)
{
	if (atomic_load(&g_app.stop_requested)) {
		g_app.state = APP_STATE_SHUTDOWN_HOOK;
		return true;
	}
	return false;
}

static int app_listen(void)
{
	const char *addr = g_app.opts.rpc_addr;
	int rc;

	rc = ust_rpc_listen(addr);
	if (rc != 0) {
		UST_ERRLOG("cannot serve JSON-RPC on %s: %s%s\n", addr, strerror(-rc),
			   rc == -EADDRINUSE ? " (is another ustord running on that socket?)" : "");
		return rc;
	}
	g_app.listening = true;
	snprintf(g_app.socket_path, sizeof(g_app.socket_path), "%s", addr);
	atomic_store(&g_app.socket_live, true);
	return 0;
}

/* Runs one state; returns true to go straight on, false to wait. */
static bool app_step_once(void)
{
	int rc;

	switch (g_app.state) {
	case APP_STATE_INIT_SUBSYSTEMS:
		ust_rpc_set_state(UST_RPC_STARTUP);
		g_app.state = APP_STATE_LOAD_CONFIG;
		g_app.waiting = true;
		ust_subsystem_init_all(app_async_done, NULL);
		return false;
	case APP_STATE_LOAD_CONFIG:
		if (app_startup_interrupted()) {
			return true;
		}
		g_app.state = APP_STATE_LISTEN;
		if (g_app.opts.config_file == NULL) {
			return true;
		}
		g_app.waiting = true;
		ust_config_load_file(g_app.opts.config_file, app_async_done, NULL);
		return false;
	case APP_STATE_LISTEN:
		if (app_startup_interrupted()) {
			return true;
		}
		g_app.state = APP_STATE_RUN;
		if (g_app.opts.rpc_addr != NULL) {
			rc = app_listen();
			if (rc != 0) {
				app_fail(rc);
			}
		}
		return true;
	case APP_STATE_RUN:
		if (app_startup_interrupted()) {
			return true;
		}
		ust_rpc_set_state(UST_RPC_RUNTIME);
		g_app.state = APP_STATE_RUNNING;
		g_app.start_called = true;
		if (g_app.start != NULL) {
			g_app.start(g_app.start_ctx);
		}
		return true;
	case APP_STATE_RUNNING:
		/* A stop inside start() is picked up here instead of by its message. */
		return app_startup_interrupted();
	case APP_STATE_SHUTDOWN_HOOK:
		g_app.state = APP_STATE_CLOSE_RPC;
		if (g_app.start_called && g_app.opts.shutdown_cb != NULL) {
			g_app.opts.shutdown_cb(g_app.opts.shutdown_ctx);
		}
		return true;
	case APP_STATE_CLOSE_RPC:
		g_app.state = APP_STATE_FINI_SUBSYSTEMS;
		if (g_app.listening) {
			ust_rpc_close();
			g_app.listening = false;
			atomic_store(&g_app.socket_live, false);
		}
		return true;
	case APP_STATE_FINI_SUBSYSTEMS:
		g_app.state = APP_STATE_STOP_THREADS;
		g_app.waiting = true;
		ust_subsystem_fini_all(app_async_done, NULL);
		return false;
	case APP_STATE_STOP_THREADS:
		g_app.state = APP_STATE_DONE;
		ust_reactors_stop();
		return false;
	case APP_STATE_DONE:
		return false;
	}
	return false;
}

static void app_step(void)
{
	while (app_step_once()) {
	}
}

static void app_start_msg(void *ctx)
{
	app_step();
}

static void app_stop_msg(void *ctx)
{
	/* An in-flight start-up step notices the stop when it completes. */
	if (g_app.waiting || g_app.state != APP_STATE_RUNNING) {
		return;
	}
	g_app.state = APP_STATE_SHUTDOWN_HOOK;
	app_step();
}

void ust_app_stop(int rc)
{
	bool expected = false;

	if (!atomic_load(&g_app.active) || g_app.app_thread == NULL) {
		UST_WARNLOG("ust_app_stop(%d) outside ust_app_start(); ignored\n", rc);
		return;
	}
	if (!atomic_compare_exchange_strong(&g_app.stop_requested, &expected, true)) {
		return;
	}
	g_app.rc = rc;
	if (ust_thread_send_msg(g_app.app_thread, app_stop_msg, NULL) != 0) {
		/* The flag alone still stops start-up; at runtime retry from the reactor. */
		UST_ERRLOG("cannot queue the shutdown message; retrying\n");
		atomic_store(&g_app.pending_signal, -1);
		ust_reactors_kick_main();
	}
}

/* ---- signals ------------------------------------------------------------ */

static void app_force_exit(void)
{
	static const char msg[] = "ustor: second signal during shutdown: forcing exit\n";
	ssize_t rc;

	rc = write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void)rc;
	if (atomic_load(&g_app.socket_live)) {
		unlink(g_app.socket_path);
	}
	_exit(1);
}

static void app_signal_handler(int signo)
{
	if (atomic_fetch_add(&g_app.signal_count, 1) >= 1 &&
	    atomic_load(&g_app.stop_requested)) {
		app_force_exit();
	}
	atomic_store(&g_app.pending_signal, signo);
	ust_reactors_kick_main();
}

void ust_app_poll_signals(void)
{
	int signo;

	if (atomic_load_explicit(&g_app.pending_signal, memory_order_relaxed) == 0) {
		return;
	}
	signo = atomic_exchange(&g_app.pending_signal, 0);
	if (signo == -1) {
		/* Retry of a stop whose message could not be queued. */
		if (ust_thread_send_msg(g_app.app_thread, app_stop_msg, NULL) != 0) {
			atomic_store(&g_app.pending_signal, -1);
		}
		return;
	}
	if (signo > 0) {
		UST_NOTICELOG("received %s; shutting down\n", strsignal(signo));
		ust_app_stop(0);
	}
}

static int app_install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = app_signal_handler;
	if (sigaction(SIGINT, &sa, &g_app.old_int) != 0 ||
	    sigaction(SIGTERM, &sa, &g_app.old_term) != 0) {
		return -errno;
	}
	/* A client that hangs up must not kill the daemon on our next write. */
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, &g_app.old_pipe) != 0) {
		return -errno;
	}
	return 0;
}

static void app_restore_signals(void)
{
	sigaction(SIGINT, &g_app.old_int, NULL);
	sigaction(SIGTERM, &g_app.old_term, NULL);
	sigaction(SIGPIPE, &g_app.old_pipe, NULL);
}

/* ---- start -------------------------------------------------------------- */

static int app_env_init(void)
{
	struct ust_env_opts eo;
	int rc;

	ust_env_opts_init(&eo);
	eo.name = g_app.opts.name;
	eo.core_mask = g_app.opts.core_mask;
	eo.mem_size_mb = g_app.opts.mem_size_mb;
	eo.file_prefix = g_app.opts.file_prefix;
	eo.no_huge = g_app.opts.no_huge;
	eo.pci = g_app.opts.pci;
	/* DPDK's start-up chatter only when the user asked for info or debug. */
	eo.quiet = g_app.opts.log_level < UST_LOG_INFO;
	rc = ust_env_init(&eo);
	if (rc != 0) {
		UST_ERRLOG("cannot initialise the environment (core mask %s): %s\n",
			   eo.core_mask != NULL ? eo.core_mask : "default", strerror(-rc));
	}
	return rc;
}

/* --worker-mask (checked by the parser), or no bound. */
static void app_bound_workers(void)
{
	struct ust_cpuset set;

	if (g_app.opts.worker_mask == NULL || ust_cpuset_parse(&set, g_app.opts.worker_mask) != 0) {
		ust_worker_set_cpumask(NULL);
		return;
	}
	ust_worker_set_cpumask(&set);
}

static struct ust_thread *app_create_app_thread(void)
{
	struct ust_cpuset mask;

	ust_cpuset_zero(&mask);
	ust_cpuset_set(&mask, ust_env_get_main_core(), true);
	return ust_thread_create("app_thread", &mask);
}

/* Everything after the environment is up; returns the app's result. */
static int app_run_reactors(void)
{
	int rc;

	rc = ust_reactors_init(g_app.opts.poll_mode);
	if (rc != 0) {
		return rc;
	}
	g_app.app_thread = app_create_app_thread();
	if (g_app.app_thread == NULL) {
		UST_ERRLOG("cannot create the app thread\n");
		rc = -ENOMEM;
	} else {
		rc = ust_thread_send_msg(g_app.app_thread, app_start_msg, NULL);
	}
	if (rc == 0) {
		rc = app_install_signals();
	}
	if (rc != 0) {
		g_app.rc = rc;
		atomic_store(&g_app.stop_requested, true);
		g_app.state = APP_STATE_DONE;
		ust_reactors_stop();
	}
	rc = ust_reactors_run();
	if (rc != 0 && g_app.rc == 0) {
		g_app.rc = rc;
	}
	app_restore_signals();
	g_app.app_thread = NULL;
	ust_thread_lib_fini();
	ust_reactors_fini();
	return g_app.rc;
}

int ust_app_start(const struct ust_app_opts *opts, ust_app_start_fn start, void *ctx)
{
	bool expected = false;
	int rc;

	if (opts == NULL) {
		return -EINVAL;
	}
	if (!atomic_compare_exchange_strong(&g_app.active, &expected, true)) {
		UST_ERRLOG("the application is already running\n");
		return -EALREADY;
	}
	g_app.opts = *opts;
	g_app.start = start;
	g_app.start_ctx = ctx;
	g_app.state = APP_STATE_INIT_SUBSYSTEMS;
	g_app.waiting = false;
	g_app.start_called = false;
	g_app.listening = false;
	g_app.rc = 0;
	atomic_store(&g_app.stop_requested, false);
	atomic_store(&g_app.pending_signal, 0);
	atomic_store(&g_app.signal_count, 0);
	atomic_store(&g_app.socket_live, false);
	ust_log_set_print_level(opts->log_level);
	/* log_set_level's threshold applies to syslog, as in SPDK. */
	ust_log_open(opts->name != NULL ? opts->name : "ustor");

	rc = app_env_init();
	if (rc == 0) {
		app_bound_workers();
		rc = app_run_reactors();
		ust_env_fini();
	}
	if (rc < 0) {
		UST_ERRLOG("%s: exiting on error: %s\n", opts->name != NULL ? opts->name : "ustor",
			   strerror(-rc));
	}
	atomic_store(&g_app.active, false);
	ust_log_close();
	return rc;
}
