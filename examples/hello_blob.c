/*
 * hello_blob: the shortest correct blobstore program. It starts the app
 * framework with a config that creates a 64 MiB malloc bdev, formats a
 * blobstore on it, creates a blob, writes one io unit, reads it back,
 * compares, closes, unloads and stops. Exit status 0 means the round trip
 * worked.
 *
 * Usage: hello_blob   (no arguments; runs without hugepages)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ustor/app.h"
#include "ustor/blob.h"
#include "ustor/env.h"

static const char g_config[] =
	"{\"subsystems\":[{\"subsystem\":\"bdev\",\"config\":[{\"method\":\"bdev_malloc_create\","
	"\"params\":{\"name\":\"Malloc0\",\"num_blocks\":131072,\"block_size\":512}}]}]}";

enum hello_state { INIT, CREATE, OPEN, RESIZE, WRITE, READ, COMPARE, UNLOAD, DONE };

struct hello {
	enum hello_state state;
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	struct ust_io_channel *ch;
	ust_blob_id id;
	char *wbuf;
	char *rbuf;
	int rc;
};

static void hello_step(struct hello *h);

static void op_done(void *arg, int rc)
{
	struct hello *h = arg;

	h->rc = rc;
	hello_step(h);
}

static void bs_done(void *arg, struct ust_blob_store *bs, int rc)
{
	((struct hello *)arg)->bs = bs;
	op_done(arg, rc);
}

static void id_done(void *arg, ust_blob_id id, int rc)
{
	((struct hello *)arg)->id = id;
	op_done(arg, rc);
}

static void blob_done(void *arg, struct ust_blob *blob, int rc)
{
	((struct hello *)arg)->blob = blob;
	op_done(arg, rc);
}

/* DMA memory belongs to the environment, which ust_app_start() tears down. */
static void hello_stop(struct hello *h, int rc)
{
	ust_dma_free(h->wbuf);
	ust_dma_free(h->rbuf);
	h->wbuf = h->rbuf = NULL;
	ust_app_stop(rc);
}

static void hello_step(struct hello *h)
{
	size_t unit = h->bs ? ust_bs_get_io_unit_size(h->bs) : 0;

	if (h->rc != 0) {
		fprintf(stderr, "hello_blob: step %d failed: %s\n", h->state, strerror(-h->rc));
		hello_stop(h, 1);
		return;
	}
	switch (h->state++) {
	case INIT:
		ust_bs_init("Malloc0", NULL, bs_done, h);
		break;
	case CREATE:
		ust_bs_create_blob(h->bs, NULL, id_done, h);
		break;
	case OPEN:
		ust_bs_open_blob(h->bs, h->id, blob_done, h);
		break;
	case RESIZE:
		ust_blob_resize(h->blob, 1, op_done, h);
		break;
	case WRITE:
		h->ch = ust_bs_alloc_io_channel(h->bs);
		h->wbuf = ust_dma_zmalloc(unit, 0);
		h->rbuf = ust_dma_zmalloc(unit, 0);
		if (h->ch == NULL || h->wbuf == NULL || h->rbuf == NULL) {
			op_done(h, -ENOMEM);
			return;
		}
		snprintf(h->wbuf, unit, "Hello, blob!");
		ust_blob_write(h->blob, h->ch, h->wbuf, 0, 1, op_done, h);
		break;
	case READ:
		ust_blob_read(h->blob, h->ch, h->rbuf, 0, 1, op_done, h);
		break;
	case COMPARE:
		if (memcmp(h->wbuf, h->rbuf, unit) != 0) {
			fprintf(stderr, "hello_blob: read back something else\n");
			hello_stop(h, 1);
			return;
		}
		printf("hello_blob: read back \"%s\"\n", h->rbuf);
		ust_bs_free_io_channel(h->ch);
		ust_blob_close(h->blob, op_done, h);
		break;
	case UNLOAD: {
		/* The store is gone once unloaded: nothing may use it after. */
		struct ust_blob_store *bs = h->bs;

		h->bs = NULL;
		ust_bs_unload(bs, op_done, h);
		break;
	}
	case DONE:
		hello_stop(h, 0);
		break;
	}
}

static void start(void *ctx)
{
	hello_step(ctx);
}

int main(void)
{
	char path[] = "/tmp/hello_blob_XXXXXX";
	struct ust_app_opts opts;
	struct hello h = {0};
	int fd, rc;

	fd = mkstemp(path);
	if (fd < 0 || write(fd, g_config, sizeof(g_config) - 1) != (ssize_t)(sizeof(g_config) - 1)) {
		perror("hello_blob: config file");
		return 1;
	}
	close(fd);
	ust_app_opts_init(&opts, "hello_blob");
	opts.config_file = path;
	opts.no_huge = true;
	opts.rpc_addr = NULL;
	rc = ust_app_start(&opts, start, &h);
	unlink(path);
	return rc == 0 ? 0 : 1;
}
