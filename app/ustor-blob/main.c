/*
 * ustor-blob: a command-line tool for a blobstore on any bdev.
 *
 *   ustor-blob [--no-huge] -c CONFIG -b BDEV COMMAND [ARGS]
 *
 * The JSON config creates the bdev (bdev_aio_create on an image file,
 * bdev_malloc_create, ...). Commands: init, list, create, write, read,
 * snapshot, clone, resize, delete, xattr, dump, fsck (see usage()).
 *
 * Guarantees:
 *  - A command that changes the store loads it, makes the change durable
 *    (metadata synced, data flushed) and unloads it cleanly before exiting
 *    0; any failure prints what failed and why on stderr, still closes and
 *    unloads what it opened, and exits 1.
 *  - Bad arguments exit 2 before anything touches the bdev.
 *  - `create`, `snapshot` and `clone` print the new blob id (0x...) as their
 *    last line of standard output.
 *  - fsck exits 0 when the store is consistent (or every error was
 *    repaired), 1 when damage remains, 2 when it could not check (no store,
 *    bdev in use, other errors). dump and fsck read the bdev directly and
 *    never load the store.
 *  - Files are read before the reactor starts and written after it stops,
 *    so no blocking file I/O runs on a reactor; the file's contents are held
 *    in memory meanwhile.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/app.h"
#include "ustor/bdev.h"
#include "ustor/blob.h"
#include "ustor/blob_fsck.h"
#include "ustor/env.h"
#include "ustor/log.h"
#include "ustor/thread.h"

#define BOUNCE_BYTES (1u << 20)
#define UNLOAD_RETRIES 1000

enum cli_cmd {
	CMD_INIT,
	CMD_LIST,
	CMD_CREATE,
	CMD_WRITE,
	CMD_READ,
	CMD_SNAPSHOT,
	CMD_CLONE,
	CMD_RESIZE,
	CMD_DELETE,
	CMD_XATTR,
	CMD_DUMP,
	CMD_FSCK,
};

static const struct {
	const char *name;
	enum cli_cmd cmd;
	int min_args, max_args;
	const char *opts; /* the command options it accepts */
} g_cmds[] = {
	{"init", CMD_INIT, 0, 0, "CB"},
	{"list", CMD_LIST, 0, 0, ""},
	{"create", CMD_CREATE, 0, 0, "st"},
	{"write", CMD_WRITE, 2, 2, ""},
	{"read", CMD_READ, 2, 2, "l"},
	{"snapshot", CMD_SNAPSHOT, 1, 1, ""},
	{"clone", CMD_CLONE, 1, 1, ""},
	{"resize", CMD_RESIZE, 2, 2, ""},
	{"delete", CMD_DELETE, 1, 1, ""},
	{"xattr", CMD_XATTR, 2, 3, ""},
	{"dump", CMD_DUMP, 0, 0, ""},
	{"fsck", CMD_FSCK, 0, 0, "R"},
};

enum cli_state {
	ST_START,        /* bdevs examined: check the bdev, then load/init or dump/fsck */
	ST_LOADED,       /* store loaded: start the command */
	ST_OPENED,       /* the blob is open */
	ST_LIST_BLOB,    /* one blob of the iteration (or its end) */
	ST_CREATED,
	ST_RESIZED,      /* resize (write: grown to fit) done; sync it */
	ST_SYNCED,       /* metadata durable */
	ST_WRITE_CHUNK,  /* previous chunk written */
	ST_WRITE_FLUSHED,
	ST_READ_CHUNK,   /* previous chunk read */
	ST_NEW_ID,       /* snapshot/clone done */
	ST_DELETED,
	ST_FSCK_DONE,
	ST_DUMP_DONE,
	ST_CLOSE,        /* close the blob if open, then unload */
	ST_UNLOAD,
	ST_UNLOADED,
};

struct cli {
	enum cli_state state;
	enum cli_cmd cmd;
	const char *cmd_name;
	int rc;        /* result of the last asynchronous call */
	int exit_code;
	const char *bdev;

	/* arguments */
	char *args[3];
	int nargs;
	ust_blob_id id;
	const char *size_arg;
	uint32_t cluster_size;
	char bstype[UST_BS_BSTYPE_MAX + 1];
	bool thin;
	bool repair;
	bool have_length;
	uint64_t length;

	/* run time */
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	struct ust_io_channel *ch;
	uint8_t *bounce;
	uint8_t *data;     /* write: the file; read: the blob's bytes */
	uint64_t data_len;
	uint64_t io_unit;
	uint64_t units_done, units_total;
	uint64_t chunk_units;
	uint64_t chunk_now;  /* units of the read in flight */
	uint64_t clusters;   /* create / resize: the size asked for */
	ust_blob_id new_id;
	int unload_tries;
	struct ust_poller *retry;
	struct ust_bs_fsck_report *report;
	uint32_t listed;
};

static struct cli g_cli = {.exit_code = 0};

static void cli_step(struct cli *c);

/* ---- small helpers ------------------------------------------------------------------------- */

static int parse_u64(const char *arg, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 0);
	if (errno != 0 || end == arg || *end != '\0' || arg[0] == '-') {
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/*
 * N clusters, or bytes with a K/M/G suffix (powers of 1024) rounded up to
 * whole clusters. cluster_size 0 only validates.
 */
static int parse_size(const char *arg, uint64_t cluster_size, uint64_t *clusters)
{
	unsigned long long v;
	uint64_t mult = 0;
	char *end;

	errno = 0;
	v = strtoull(arg, &end, 0);
	if (errno != 0 || end == arg || arg[0] == '-') {
		return -EINVAL;
	}
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mult = 1ull << 10;
		break;
	case 'm':
	case 'M':
		mult = 1ull << 20;
		break;
	case 'g':
	case 'G':
		mult = 1ull << 30;
		break;
	default:
		return -EINVAL;
	}
	if (mult != 0) {
		end++;
		if (*end == 'i' && end[1] == 'B') {
			end += 2;
		} else if (*end == 'B') {
			end++;
		}
	}
	if (*end != '\0') {
		return -EINVAL;
	}
	if (mult == 0) {
		*clusters = v;
		return 0;
	}
	if (v > UINT64_MAX / mult) {
		return -ERANGE;
	}
	if (cluster_size != 0) {
		*clusters = (v * mult + cluster_size - 1) / cluster_size;
	}
	return 0;
}

static bool printable(const uint8_t *v, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (v[i] < 0x20 || v[i] > 0x7e) {
			return false;
		}
	}
	return true;
}

static void print_value(const void *value, size_t len)
{
	const uint8_t *v = value;
	size_t i;

	if (printable(v, len)) {
		printf("%.*s", (int)len, (const char *)v);
		return;
	}
	printf("0x");
	for (i = 0; i < len; i++) {
		printf("%02x", v[i]);
	}
}

static void fail(struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Report a failure; the machine then closes and unloads what is open. */
static void fail(struct cli *c, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ustor-blob %s: ", c->cmd_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	if (c->exit_code == 0) {
		c->exit_code = 1;
	}
	c->state = ST_CLOSE;
}

/* ---- callbacks: store the result, run the machine ------------------------------------------- */

static void op_cb(void *arg, int rc)
{
	struct cli *c = arg;

	c->rc = rc;
	cli_step(c);
}

static void bs_cb(void *arg, struct ust_blob_store *bs, int rc)
{
	struct cli *c = arg;

	c->bs = bs;
	op_cb(arg, rc);
}

static void blob_cb(void *arg, struct ust_blob *blob, int rc)
{
	struct cli *c = arg;

	if (rc == 0) {
		c->blob = blob;
	}
	op_cb(arg, rc);
}

static void iter_cb(void *arg, struct ust_blob *blob, int rc)
{
	struct cli *c = arg;

	/* The iteration owns the blob it hands out; ust_bs_iter_next closes it. */
	c->blob = rc == 0 ? blob : NULL;
	op_cb(arg, rc);
}

static void id_cb(void *arg, ust_blob_id id, int rc)
{
	struct cli *c = arg;

	c->new_id = id;
	op_cb(arg, rc);
}

static void fsck_cb(void *arg, struct ust_bs_fsck_report *report, int rc)
{
	struct cli *c = arg;

	c->report = report;
	op_cb(arg, rc);
}

static void examine_done(void *ctx)
{
	cli_step(ctx);
}

static int unload_retry(void *ctx)
{
	struct cli *c = ctx;

	ust_poller_unregister(&c->retry);
	c->state = ST_UNLOAD;
	cli_step(c);
	return UST_POLLER_BUSY;
}

/* ---- commands ----------------------------------------------------------------------------------- */

static void print_xattr(void *ctx, const char *name)
{
	struct cli *c = ctx;
	const void *value;
	size_t len;

	if (ust_blob_get_xattr(c->blob, name, &value, &len) != 0) {
		return;
	}
	printf("  xattr %s=", name);
	print_value(value, len);
	printf("\n");
}

static void print_blob(struct cli *c, struct ust_blob *blob)
{
	uint64_t clusters = ust_blob_get_num_clusters(blob);
	ust_blob_id parent = ust_blob_get_parent_id(blob);

	printf("blob 0x%" PRIx64 ": %" PRIu64 " clusters (%" PRIu64 " bytes), %" PRIu64
	       " allocated, thin %s, read-only %s, snapshot %s, parent ", ust_blob_get_id(blob),
	       clusters, clusters * ust_bs_get_cluster_size(c->bs),
	       ust_blob_get_num_allocated_clusters(blob), ust_blob_is_thin(blob) ? "yes" : "no",
	       ust_blob_is_read_only(blob) ? "yes" : "no", ust_blob_is_snapshot(blob) ? "yes" : "no");
	if (parent != 0) {
		printf("0x%" PRIx64 "\n", parent);
	} else {
		printf("none\n");
	}
	ust_blob_list_xattrs(blob, print_xattr, c);
}

static void list_end(struct cli *c)
{
	struct ust_bs_damage *d;
	size_t n, i;

	printf("%u blobs; %" PRIu64 " of %" PRIu64 " data clusters free, cluster size %" PRIu64
	       ", io unit %" PRIu64 "\n", c->listed, ust_bs_get_free_cluster_count(c->bs),
	       ust_bs_get_total_data_cluster_count(c->bs), ust_bs_get_cluster_size(c->bs),
	       ust_bs_get_io_unit_size(c->bs));
	n = ust_bs_get_damaged(c->bs, NULL, 0);
	if (n == 0) {
		return;
	}
	d = calloc(n, sizeof(*d));
	if (d == NULL) {
		fail(c, "out of memory listing %zu damaged blobs", n);
		return;
	}
	ust_bs_get_damaged(c->bs, d, n);
	for (i = 0; i < n; i++) {
		printf("damaged: blob 0x%" PRIx64 " (slot %u): %s: %s\n", d[i].id, d[i].slot,
		       strerror(-d[i].error), d[i].msg);
	}
	free(d);
}

/* After load: start the command. */
static void run_loaded(struct cli *c)
{
	struct ust_blob_opts o;
	uint64_t clusters = 0;

	c->io_unit = ust_bs_get_io_unit_size(c->bs);
	switch (c->cmd) {
	case CMD_INIT:
		printf("initialized a blobstore on %s: cluster size %" PRIu64 ", io unit %" PRIu64
		       ", %" PRIu64 " data clusters, %u blob slots%s%s%s\n", c->bdev,
		       ust_bs_get_cluster_size(c->bs), c->io_unit,
		       ust_bs_get_total_data_cluster_count(c->bs), ust_bs_get_max_blobs(c->bs),
		       c->bstype[0] ? ", bstype \"" : "", c->bstype, c->bstype[0] ? "\"" : "");
		c->state = ST_UNLOAD;
		cli_step(c);
		return;
	case CMD_LIST:
		c->state = ST_LIST_BLOB;
		ust_bs_iter_first(c->bs, iter_cb, c);
		return;
	case CMD_CREATE:
		if (c->size_arg != NULL) {
			parse_size(c->size_arg, ust_bs_get_cluster_size(c->bs), &clusters);
		}
		ust_blob_opts_init(&o);
		o.num_clusters = clusters;
		o.thin_provision = c->thin;
		c->clusters = clusters;
		c->state = ST_CREATED;
		ust_bs_create_blob(c->bs, &o, id_cb, c);
		return;
	case CMD_SNAPSHOT:
		c->state = ST_NEW_ID;
		ust_bs_create_snapshot(c->bs, c->id, NULL, 0, id_cb, c);
		return;
	case CMD_CLONE:
		c->state = ST_NEW_ID;
		ust_bs_create_clone(c->bs, c->id, NULL, 0, id_cb, c);
		return;
	case CMD_DELETE:
		c->state = ST_DELETED;
		ust_bs_delete_blob(c->bs, c->id, op_cb, c);
		return;
	default:
		c->state = ST_OPENED;
		ust_bs_open_blob(c->bs, c->id, blob_cb, c);
		return;
	}
}

static void write_next(struct cli *c)
{
	uint64_t n = c->units_total - c->units_done, off, len;

	if (n == 0) {
		/* Make the data durable (writes into allocated clusters follow the device). */
		c->state = ST_WRITE_FLUSHED;
		ust_blob_sync_md(c->blob, op_cb, c);
		return;
	}
	if (n > c->chunk_units) {
		n = c->chunk_units;
	}
	off = c->units_done * c->io_unit;
	len = c->data_len - off < n * c->io_unit ? c->data_len - off : n * c->io_unit;
	memcpy(c->bounce, c->data + off, len);
	memset(c->bounce + len, 0, n * c->io_unit - len); /* the last unit is zero-padded */
	c->state = ST_WRITE_CHUNK;
	ust_blob_write(c->blob, c->ch, c->bounce, c->units_done, n, op_cb, c);
	c->units_done += n;
}

static void read_next(struct cli *c, uint64_t just_read)
{
	uint64_t off, len, n;

	if (just_read > 0) {
		off = (c->units_done - just_read) * c->io_unit;
		len = c->data_len - off < just_read * c->io_unit ? c->data_len - off :
								  just_read * c->io_unit;
		memcpy(c->data + off, c->bounce, len);
	}
	n = c->units_total - c->units_done;
	if (n == 0) {
		printf("read %" PRIu64 " bytes from blob 0x%" PRIx64 "\n", c->data_len, c->id);
		c->state = ST_CLOSE;
		cli_step(c);
		return;
	}
	if (n > c->chunk_units) {
		n = c->chunk_units;
	}
	c->state = ST_READ_CHUNK;
	c->units_done += n;
	c->chunk_now = n;
	ust_blob_read(c->blob, c->ch, c->bounce, c->units_done - n, n, op_cb, c);
}

static int start_io(struct cli *c)
{
	c->ch = ust_bs_alloc_io_channel(c->bs);
	c->bounce = ust_dma_zmalloc(BOUNCE_BYTES, 4096);
	if (c->ch == NULL || c->bounce == NULL) {
		return -ENOMEM;
	}
	c->chunk_units = BOUNCE_BYTES / c->io_unit;
	c->units_done = 0;
	return 0;
}

/* The blob is open: do the command's work on it. */
static void run_opened(struct cli *c)
{
	uint64_t clusters = 0, cs = ust_bs_get_cluster_size(c->bs), bytes;
	const void *value;
	size_t len;
	int rc;

	switch (c->cmd) {
	case CMD_WRITE:
		clusters = (c->data_len + cs - 1) / cs;
		c->units_total = (c->data_len + c->io_unit - 1) / c->io_unit;
		if (clusters > ust_blob_get_num_clusters(c->blob)) {
			printf("growing blob 0x%" PRIx64 " from %" PRIu64 " to %" PRIu64 " clusters\n",
			       c->id, ust_blob_get_num_clusters(c->blob), clusters);
			c->state = ST_RESIZED;
			ust_blob_resize(c->blob, clusters, op_cb, c);
			return;
		}
		c->state = ST_SYNCED;
		c->rc = 0;
		cli_step(c);
		return;
	case CMD_READ:
		bytes = ust_blob_get_num_io_units(c->blob) * c->io_unit;
		if (c->have_length && c->length > bytes) {
			fail(c, "--length %" PRIu64 " is more than blob 0x%" PRIx64 " holds (%" PRIu64
			     " bytes)", c->length, c->id, bytes);
			cli_step(c);
			return;
		}
		c->data_len = c->have_length ? c->length : bytes;
		c->data = malloc(c->data_len ? c->data_len : 1);
		if (c->data == NULL || start_io(c) != 0) {
			fail(c, "out of memory for %" PRIu64 " bytes", c->data_len);
			cli_step(c);
			return;
		}
		c->units_total = (c->data_len + c->io_unit - 1) / c->io_unit;
		read_next(c, 0);
		return;
	case CMD_RESIZE:
		parse_size(c->size_arg, cs, &clusters);
		c->state = ST_RESIZED;
		c->clusters = clusters;
		ust_blob_resize(c->blob, clusters, op_cb, c);
		return;
	case CMD_XATTR:
		if (c->nargs == 3) {
			rc = ust_blob_set_xattr(c->blob, c->args[1], c->args[2], strlen(c->args[2]));
			if (rc != 0) {
				fail(c, "cannot set xattr \"%s\" on blob 0x%" PRIx64 ": %s", c->args[1],
				     c->id, strerror(-rc));
				cli_step(c);
				return;
			}
			c->state = ST_SYNCED;
			ust_blob_sync_md(c->blob, op_cb, c);
			return;
		}
		rc = ust_blob_get_xattr(c->blob, c->args[1], &value, &len);
		if (rc != 0) {
			fail(c, "blob 0x%" PRIx64 " has no xattr \"%s\": %s", c->id, c->args[1],
			     strerror(-rc));
			cli_step(c);
			return;
		}
		print_value(value, len);
		printf("\n");
		c->state = ST_CLOSE;
		cli_step(c);
		return;
	default:
		c->state = ST_CLOSE;
		cli_step(c);
		return;
	}
}

static void cli_stop(struct cli *c)
{
	if (c->bounce != NULL) {
		ust_dma_free(c->bounce); /* DMA memory goes with the environment */
		c->bounce = NULL;
	}
	ust_app_stop(c->exit_code);
}

static void cli_step(struct cli *c)
{
	struct ust_bdev *bdev;
	struct ust_bs_opts o;
	int rc = c->rc;

	c->rc = 0;
	switch (c->state) {
	case ST_START:
		bdev = ust_bdev_get_by_name(c->bdev);
		if (bdev == NULL) {
			fprintf(stderr, "ustor-blob %s: bdev '%s' not found (does the config create it?)\n",
				c->cmd_name, c->bdev);
			c->exit_code = c->cmd == CMD_FSCK ? 2 : 1;
			cli_stop(c);
			return;
		}
		if (c->cmd == CMD_DUMP) {
			c->state = ST_DUMP_DONE;
			ust_bs_dump(c->bdev, stdout, op_cb, c);
			return;
		}
		if (c->cmd == CMD_FSCK) {
			struct ust_bs_fsck_opts fo;

			ust_bs_fsck_opts_init(&fo);
			fo.repair = c->repair;
			c->state = ST_FSCK_DONE;
			ust_bs_fsck(c->bdev, &fo, fsck_cb, c);
			return;
		}
		ust_bs_opts_init(&o);
		c->state = ST_LOADED;
		if (c->cmd == CMD_INIT) {
			o.cluster_size = c->cluster_size;
			memcpy(o.bstype, c->bstype, sizeof(o.bstype));
			ust_bs_init(c->bdev, &o, bs_cb, c);
		} else {
			ust_bs_load(c->bdev, &o, bs_cb, c);
		}
		return;
	case ST_LOADED:
		if (rc != 0) {
			fprintf(stderr, "ustor-blob %s: cannot %s a blobstore on %s: %s\n", c->cmd_name,
				c->cmd == CMD_INIT ? "create" : "load", c->bdev, strerror(-rc));
			c->exit_code = 1;
			cli_stop(c);
			return;
		}
		run_loaded(c);
		return;
	case ST_OPENED:
		if (rc != 0) {
			fail(c, "cannot open blob 0x%" PRIx64 ": %s", c->id, strerror(-rc));
			break;
		}
		run_opened(c);
		return;
	case ST_LIST_BLOB:
		if (rc == -ENOENT) {
			list_end(c);
			c->state = ST_UNLOAD;
			break;
		}
		if (rc != 0) {
			fail(c, "listing blobs failed: %s", strerror(-rc));
			break;
		}
		print_blob(c, c->blob);
		c->listed++;
		{
			struct ust_blob *done = c->blob;

			/* The iteration closes it; the next one may arrive inline. */
			c->blob = NULL;
			ust_bs_iter_next(c->bs, done, iter_cb, c);
		}
		return;
	case ST_CREATED:
		if (rc != 0) {
			fail(c, "cannot create a blob of %" PRIu64 " clusters: %s", c->clusters,
			     strerror(-rc));
			break;
		}
		printf("created %s blob of %" PRIu64 " clusters\n", c->thin ? "a thin" : "a thick",
		       c->clusters);
		printf("0x%" PRIx64 "\n", c->new_id);
		c->state = ST_UNLOAD;
		break;
	case ST_RESIZED:
		if (rc != 0) {
			fail(c, "cannot resize blob 0x%" PRIx64 ": %s", c->id, strerror(-rc));
			break;
		}
		c->state = ST_SYNCED;
		ust_blob_sync_md(c->blob, op_cb, c);
		return;
	case ST_SYNCED:
		if (rc != 0) {
			fail(c, "cannot make the change to blob 0x%" PRIx64 " durable: %s", c->id,
			     strerror(-rc));
			break;
		}
		if (c->cmd == CMD_WRITE) {
			if (start_io(c) != 0) {
				fail(c, "out of memory");
				break;
			}
			write_next(c);
			return;
		}
		if (c->cmd == CMD_RESIZE) {
			printf("blob 0x%" PRIx64 " now has %" PRIu64 " clusters\n", c->id,
			       ust_blob_get_num_clusters(c->blob));
		} else if (c->cmd == CMD_XATTR) {
			printf("set xattr \"%s\" on blob 0x%" PRIx64 "\n", c->args[1], c->id);
		}
		c->state = ST_CLOSE;
		break;
	case ST_WRITE_CHUNK:
		if (rc != 0) {
			fail(c, "writing blob 0x%" PRIx64 " at io unit %" PRIu64 " failed: %s", c->id,
			     c->units_done, strerror(-rc));
			break;
		}
		write_next(c);
		return;
	case ST_WRITE_FLUSHED:
		if (rc != 0) {
			fail(c, "flushing blob 0x%" PRIx64 " failed: %s", c->id, strerror(-rc));
			break;
		}
		printf("wrote %" PRIu64 " bytes (%" PRIu64 " io units) to blob 0x%" PRIx64 "\n",
		       c->data_len, c->units_total, c->id);
		c->state = ST_CLOSE;
		break;
	case ST_READ_CHUNK:
		if (rc != 0) {
			fail(c, "reading blob 0x%" PRIx64 " failed: %s", c->id, strerror(-rc));
			break;
		}
		read_next(c, c->chunk_now);
		return;
	case ST_NEW_ID:
		if (rc != 0) {
			fail(c, "cannot %s blob 0x%" PRIx64 ": %s", c->cmd == CMD_SNAPSHOT ?
			     "snapshot" : "clone", c->id, strerror(-rc));
			break;
		}
		printf("%s of blob 0x%" PRIx64 " created\n", c->cmd == CMD_SNAPSHOT ? "snapshot" :
		       "clone", c->id);
		printf("0x%" PRIx64 "\n", c->new_id);
		c->state = ST_UNLOAD;
		break;
	case ST_DELETED:
		if (rc != 0) {
			fail(c, "cannot delete blob 0x%" PRIx64 ": %s", c->id, strerror(-rc));
			break;
		}
		printf("deleted blob 0x%" PRIx64 "\n", c->id);
		c->state = ST_UNLOAD;
		break;
	case ST_FSCK_DONE:
		if (rc != 0) {
			fprintf(stderr, "ustor-blob fsck: cannot check %s: %s\n", c->bdev, strerror(-rc));
			c->exit_code = 2;
		} else {
			ust_bs_fsck_report_print(c->report, stdout);
			c->exit_code = !c->report->store_found ? 2 : c->report->errors_unrepaired > 0;
			ust_bs_fsck_report_free(c->report);
			c->report = NULL;
		}
		cli_stop(c);
		return;
	case ST_DUMP_DONE:
		fflush(stdout);
		if (rc != 0) {
			fprintf(stderr, "ustor-blob dump: %s: %s\n", c->bdev, strerror(-rc));
			c->exit_code = rc == -ENODATA ? 2 : 1;
		}
		cli_stop(c);
		return;
	case ST_CLOSE:
		if (c->ch != NULL) {
			ust_bs_free_io_channel(c->ch);
			c->ch = NULL;
		}
		c->state = ST_UNLOAD;
		if (c->blob != NULL) {
			struct ust_blob *blob = c->blob;

			c->blob = NULL;
			ust_blob_close(blob, op_cb, c);
			return;
		}
		break;
	case ST_UNLOAD:
		if (rc != 0) {
			/* A failed close: report it, the unload says whether the store is safe. */
			fail(c, "closing blob 0x%" PRIx64 " failed: %s", c->id, strerror(-rc));
			c->state = ST_UNLOAD;
		}
		if (c->bs == NULL) {
			cli_stop(c);
			return;
		}
		c->state = ST_UNLOADED;
		ust_bs_unload(c->bs, op_cb, c);
		return;
	case ST_UNLOADED:
		if (rc == -EBUSY && ++c->unload_tries < UNLOAD_RETRIES) {
			/* A released channel goes away asynchronously: try again shortly. */
			c->retry = ust_poller_register(unload_retry, c, 1000, "blob_unload_retry");
			if (c->retry != NULL) {
				return;
			}
		}
		if (rc != 0) {
			fprintf(stderr, "ustor-blob %s: unloading the blobstore failed: %s\n",
				c->cmd_name, strerror(-rc));
			c->exit_code = 1;
		}
		c->bs = NULL;
		cli_stop(c);
		return;
	}
	cli_step(c);
}

static void cli_start(void *ctx)
{
	int rc = ust_bdev_wait_for_examine(examine_done, ctx);

	if (rc != 0) {
		fprintf(stderr, "ustor-blob: waiting for bdev examine failed: %s\n", strerror(-rc));
		ust_app_stop(1);
	}
}

/* ---- arguments ------------------------------------------------------------------------------------- */

static void usage(void)
{
	printf("Usage: ustor-blob [OPTION]... -c CONFIG -b BDEV COMMAND [ARGS]\n"
	       "A blobstore on the bdev BDEV that the JSON config CONFIG creates.\n"
	       " -b, --bdev NAME            the bdev holding the store (required)\n"
	       "Commands:\n"
	       "  init [--cluster-size BYTES] [--bstype TYPE]   format a new store\n"
	       "  list                       every blob: size, allocation, flags, parent, xattrs\n"
	       "  create [--size N] [--thin] a new blob; N clusters or bytes with K/M/G;\n"
	       "                             prints its id as the last line\n"
	       "  write ID FILE              FILE's contents into the blob from offset 0 (grown to\n"
	       "                             fit; the last io unit zero-padded)\n"
	       "  read ID FILE [--length N]  the blob's contents (or its first N bytes) into FILE\n"
	       "  snapshot ID | clone ID     a snapshot of / a clone of the blob; prints the new id\n"
	       "  resize ID N                N clusters, or bytes with K/M/G\n"
	       "  delete ID\n"
	       "  xattr ID NAME [VALUE]      print or set an extended attribute\n"
	       "  dump                       decode the superblocks, bitmaps and every metadata page\n"
	       "  fsck [--repair]            check the store; exit 0 clean, 1 damage, 2 error\n"
	       "IDs are blob ids as printed (0x...) or decimal.\n\n");
}

/* Options that take a value, to find where the command starts. */
static bool takes_value(const char *a)
{
	static const char *const longs[] = {"--cpumask", "--rpc-socket", "--config", "--mem-size",
					    "--file-prefix", "--poll-mode", "--log-flag",
					    "--log-level", "--bdev"};
	size_t i;

	if (a[0] == '-' && a[1] == '-') {
		if (strchr(a, '=') != NULL) {
			return false;
		}
		for (i = 0; i < sizeof(longs) / sizeof(longs[0]); i++) {
			if (strcmp(a, longs[i]) == 0) {
				return true;
			}
		}
		return false;
	}
	/* A short option with its value attached ("-cfile") needs no next word. */
	return strchr("mrcLb", a[1]) != NULL && a[2] == '\0';
}

static int parse_common(int ch, char *arg, void *ctx)
{
	struct cli *c = ctx;

	if (ch == 'b') {
		c->bdev = arg;
		return 0;
	}
	return -EINVAL;
}

enum {
	OPT_CLUSTER_SIZE = 0x2000,
	OPT_BSTYPE,
	OPT_SIZE,
	OPT_THIN,
	OPT_LENGTH,
	OPT_REPAIR,
};

static const struct option g_cmd_long[] = {
	{"cluster-size", required_argument, NULL, OPT_CLUSTER_SIZE},
	{"bstype", required_argument, NULL, OPT_BSTYPE},
	{"size", required_argument, NULL, OPT_SIZE},
	{"thin", no_argument, NULL, OPT_THIN},
	{"length", required_argument, NULL, OPT_LENGTH},
	{"repair", no_argument, NULL, OPT_REPAIR},
	{NULL, 0, NULL, 0},
};

static int cmd_option(struct cli *c, const char *allowed, int ch, const char *arg)
{
	static const char letters[] = {[OPT_CLUSTER_SIZE - OPT_CLUSTER_SIZE] = 'C',
				       [OPT_BSTYPE - OPT_CLUSTER_SIZE] = 'B',
				       [OPT_SIZE - OPT_CLUSTER_SIZE] = 's',
				       [OPT_THIN - OPT_CLUSTER_SIZE] = 't',
				       [OPT_LENGTH - OPT_CLUSTER_SIZE] = 'l',
				       [OPT_REPAIR - OPT_CLUSTER_SIZE] = 'R'};
	uint64_t v = 0;

	if (ch < OPT_CLUSTER_SIZE || ch > OPT_REPAIR ||
	    strchr(allowed, letters[ch - OPT_CLUSTER_SIZE]) == NULL) {
		fprintf(stderr, "ustor-blob %s: option not accepted here; see 'ustor-blob --help'\n",
			c->cmd_name);
		return -EINVAL;
	}
	switch (ch) {
	case OPT_CLUSTER_SIZE:
		/* Bytes, plain or with a suffix (a "cluster" of one byte is a byte). */
		if (parse_size(arg, 1, &v) != 0 || v == 0 || v > UINT32_MAX) {
			fprintf(stderr, "ustor-blob init: invalid --cluster-size '%s'\n", arg);
			return -EINVAL;
		}
		c->cluster_size = (uint32_t)v;
		return 0;
	case OPT_BSTYPE:
		if (strlen(arg) > UST_BS_BSTYPE_MAX) {
			fprintf(stderr, "ustor-blob init: --bstype '%s' is longer than %d bytes\n", arg,
				UST_BS_BSTYPE_MAX);
			return -EINVAL;
		}
		snprintf(c->bstype, sizeof(c->bstype), "%s", arg);
		return 0;
	case OPT_SIZE:
		if (parse_size(arg, 0, &v) != 0) {
			fprintf(stderr, "ustor-blob create: invalid --size '%s' (clusters, or bytes "
				"with K, M or G)\n", arg);
			return -EINVAL;
		}
		c->size_arg = arg;
		return 0;
	case OPT_THIN:
		c->thin = true;
		return 0;
	case OPT_LENGTH:
		if (parse_size(arg, 1, &v) != 0) {
			fprintf(stderr, "ustor-blob read: invalid --length '%s' (bytes)\n", arg);
			return -EINVAL;
		}
		c->length = v;
		c->have_length = true;
		return 0;
	case OPT_REPAIR:
		c->repair = true;
		return 0;
	}
	return -EINVAL;
}

/* argv[0] is the command. */
static int parse_command(struct cli *c, int argc, char **argv)
{
	size_t i, n = sizeof(g_cmds) / sizeof(g_cmds[0]);
	int ch, rc;

	for (i = 0; i < n; i++) {
		if (strcmp(argv[0], g_cmds[i].name) == 0) {
			break;
		}
	}
	if (i == n) {
		fprintf(stderr, "ustor-blob: unknown command '%s'; see 'ustor-blob --help'\n", argv[0]);
		return -EINVAL;
	}
	c->cmd = g_cmds[i].cmd;
	c->cmd_name = g_cmds[i].name;
	optind = 0;
	opterr = 1;
	while ((ch = getopt_long(argc, argv, "", g_cmd_long, NULL)) != -1) {
		if (ch == '?' || ch == ':') {
			return -EINVAL;
		}
		rc = cmd_option(c, g_cmds[i].opts, ch, optarg);
		if (rc != 0) {
			return rc;
		}
	}
	for (; optind < argc; optind++) {
		if (c->nargs == 3) {
			c->nargs++;
			break;
		}
		c->args[c->nargs++] = argv[optind];
	}
	if (c->nargs < g_cmds[i].min_args || c->nargs > g_cmds[i].max_args) {
		fprintf(stderr, "ustor-blob %s: expected %d%s%d arguments, got %d; see 'ustor-blob "
			"--help'\n", c->cmd_name, g_cmds[i].min_args,
			g_cmds[i].max_args != g_cmds[i].min_args ? " to " : "",
			g_cmds[i].max_args != g_cmds[i].min_args ? g_cmds[i].max_args : -1, c->nargs);
		return -EINVAL;
	}
	if (c->nargs >= 1 && c->cmd != CMD_INIT && c->cmd != CMD_LIST && c->cmd != CMD_CREATE &&
	    c->cmd != CMD_DUMP && c->cmd != CMD_FSCK) {
		if (parse_u64(c->args[0], &c->id) != 0 || c->id == 0) {
			fprintf(stderr, "ustor-blob %s: invalid blob id '%s'\n", c->cmd_name, c->args[0]);
			return -EINVAL;
		}
	}
	if (c->cmd == CMD_RESIZE) {
		uint64_t v;

		if (parse_size(c->args[1], 0, &v) != 0) {
			fprintf(stderr, "ustor-blob resize: invalid size '%s' (clusters, or bytes with K, "
				"M or G)\n", c->args[1]);
			return -EINVAL;
		}
		c->size_arg = c->args[1];
	}
	return 0;
}

static int read_file(struct cli *c, const char *path)
{
	FILE *f = fopen(path, "rb");
	long len;

	if (f == NULL) {
		fprintf(stderr, "ustor-blob write: cannot open %s: %s\n", path, strerror(errno));
		return -errno;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
		fprintf(stderr, "ustor-blob write: cannot size %s: %s\n", path, strerror(errno));
		fclose(f);
		return -EIO;
	}
	c->data_len = (uint64_t)len;
	c->data = malloc(len > 0 ? (size_t)len : 1);
	if (c->data == NULL) {
		fprintf(stderr, "ustor-blob write: no memory for %ld bytes of %s\n", len, path);
		fclose(f);
		return -ENOMEM;
	}
	if (len > 0 && fread(c->data, 1, (size_t)len, f) != (size_t)len) {
		fprintf(stderr, "ustor-blob write: reading %s failed\n", path);
		fclose(f);
		return -EIO;
	}
	fclose(f);
	return 0;
}

static int write_file(struct cli *c, const char *path)
{
	FILE *f = fopen(path, "wb");

	if (f == NULL) {
		fprintf(stderr, "ustor-blob read: cannot create %s: %s\n", path, strerror(errno));
		return -errno;
	}
	if ((c->data_len > 0 && fwrite(c->data, 1, c->data_len, f) != c->data_len) ||
	    fclose(f) != 0) {
		fprintf(stderr, "ustor-blob read: writing %s failed: %s\n", path, strerror(errno));
		return -EIO;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct ust_app_opts opts;
	struct cli *c = &g_cli;
	int i, rc;

	/* The common options come first; the first word that is not an option is the command. */
	for (i = 1; i < argc; i++) {
		if (argv[i][0] != '-' || argv[i][1] == '\0') {
			break;
		}
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (takes_value(argv[i])) {
			i++;
		}
	}
	ust_app_opts_init(&opts, "ustor-blob");
	opts.rpc_addr = NULL;
	opts.poll_mode = UST_POLL_ALWAYS;
	opts.log_level = UST_LOG_WARN;
	rc = ust_app_parse_args(i < argc ? i : argc, argv, &opts, "b:",
				(const struct option[]){{"bdev", required_argument, NULL, 'b'},
							{NULL, 0, NULL, 0}},
				parse_common, usage, c);
	if (rc == 1) {
		return 0;
	}
	if (rc != 0) {
		return 2;
	}
	if (i >= argc) {
		fprintf(stderr, "ustor-blob: no command given; see 'ustor-blob --help'\n");
		return 2;
	}
	if (c->bdev == NULL || opts.config_file == NULL) {
		fprintf(stderr, "ustor-blob: -c CONFIG and -b BDEV are required; see 'ustor-blob "
			"--help'\n");
		return 2;
	}
	if (parse_command(c, argc - i, argv + i) != 0) {
		return 2;
	}
	if (c->cmd == CMD_WRITE && read_file(c, c->args[1]) != 0) {
		free(c->data);
		return 2;
	}
	c->state = ST_START;
	rc = ust_app_start(&opts, cli_start, c);
	if (rc < 0) {
		fprintf(stderr, "ustor-blob: start-up failed (%s): see the messages above\n",
			strerror(-rc));
		rc = c->cmd == CMD_FSCK ? 2 : 1;
	}
	if (rc == 0 && c->cmd == CMD_READ && write_file(c, c->args[1]) != 0) {
		rc = 1;
	}
	free(c->data);
	return rc;
}
