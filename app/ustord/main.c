/*
 * ustord: the ustor daemon. It brings up the framework (reactors on the
 * cores of -m, every subsystem, the config given with -c and the JSON-RPC
 * server on -r) and serves until SIGINT or SIGTERM.
 *
 * Guarantees: exit code 0 after a clean signal-driven shutdown (the RPC
 * socket is removed); non-zero, with the reason on stderr, when start-up
 * fails (bad option, bad config entry, socket in use, ...).
 */
#include <stdio.h>
#include <stdlib.h>

#include "ustor/app.h"
#include "ustor/log.h"

static void ustord_usage(void)
{
	printf("Usage: ustord [OPTION]...\n"
	       "The ustor storage daemon: serves JSON-RPC on a UNIX socket and runs until\n"
	       "SIGINT or SIGTERM.\n\n");
}

static void ustord_started(void *ctx)
{
	const struct ust_app_opts *opts = ust_app_get_opts();

	UST_NOTICELOG("ustord started; JSON-RPC on %s\n",
		      opts != NULL && opts->rpc_addr != NULL ? opts->rpc_addr : "(none)");
}

int main(int argc, char **argv)
{
	struct ust_app_opts opts;
	int rc;

	ust_app_opts_init(&opts, "ustord");
	rc = ust_app_parse_args(argc, argv, &opts, NULL, NULL, NULL, ustord_usage, NULL);
	if (rc == 1) {
		return EXIT_SUCCESS;
	}
	if (rc != 0) {
		return 2;
	}
	rc = ust_app_start(&opts, ustord_started, NULL);
	return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
