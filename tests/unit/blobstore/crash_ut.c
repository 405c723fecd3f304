/*
 * Crash consistency of the blobstore (docs/blobstore-format.md 1, 9), checked
 * with the crash simulator (bdev/crashsim): a scripted workload (format,
 * create, resize, xattr changes with chain pages, thin allocations, whole-
 * cluster writes, overwrites, delete, slot reuse, operations on several blobs
 * in flight together, a thin blob whose map spans several extent pages with
 * allocations across pages in flight together, grown and shrunk across page
 * boundaries, clean unload) runs on a crashsim bdev that records
 * every write and flush. While it runs, an oracle records each blob's
 * successive durable states and each data write, keyed by crashsim event
 * numbers: when the operation was issued and when it was acknowledged.
 *
 * Then, for many cut points and several seeds per cut (pending writes lost,
 * kept, reordered, one torn), the store is loaded from the crash image and
 * the test asserts: it loads (once format was acknowledged); nothing is
 * damaged; every blob is in exactly one state the oracle allows: the last
 * state acknowledged before the cut, or a later one whose operation had
 * begun (never a mixture, never a blob nobody created); the free cluster
 * count is the total minus the clusters all blobs hold; every write into a
 * newly allocated thin cluster acknowledged before the cut, and every other
 * write acknowledged before the crash's durability boundary, reads back
 * (overwritten only by a later write that had begun); every 512-byte unit
 * holds the data of exactly one write (or the zero fill). Every few cuts the
 * recovered store is also used (write, create), unloaded and reloaded clean.
 *
 * USTOR_CRASH_CUTS (number of cut points; at least the number of events
 * means every cut) and USTOR_CRASH_SEEDS (seeds per cut) widen the run.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ustor/bdev.h"
#include "ustor/blob.h"
#include "ustor/blob_fsck.h"
#include "ustor/crashsim.h"
#include "ustor/log.h"
#include "ustor/thread.h"

#include "blob_test.h"

#define BLOCK 512u
#define DEV_BYTES (8u << 20)
#define CLUSTER (32u << 10)
#define UPC (CLUSTER / BLOCK) /* io units per cluster */
#define MAX_BLOBS 32u

#define NB 24   /* oracle blobs */
#define NS 48   /* states per blob */
#define NW 256  /* data writes */
#define NX 4    /* xattr names */
/* Clusters of the largest blob: X spans four extent pages (1008 clusters each). */
#define MAXCLU 3100
#define STAMP_MAGIC 0x5354414dU /* "MATS" */

static const char *const g_xname[NX] = {"a", "b", "big", "i"};
static const bool g_xinternal[NX] = {false, false, false, true};

/* ---- the oracle ------------------------------------------------------------------------ */

struct ostate {
	bool exists;
	bool thin;
	uint64_t nclu;
	uint64_t nalloc;
	uint32_t xver[NX]; /* 0: absent */
	uint32_t xlen[NX];
	uint64_t start; /* events logged when the operation was issued */
	uint64_t ack;   /* events logged when it was acknowledged (UINT64_MAX: never) */
};

struct oblob {
	const char *name;
	ust_blob_id id;
	struct ust_blob *blob; /* open handle during the workload */
	struct ostate cur;     /* the in-memory model */
	bool allocated[MAXCLU];
	uint32_t nstates;
	struct ostate st[NS];
};

struct owrite {
	uint32_t b;
	uint64_t unit;
	uint32_t n;
	uint32_t stamp;
	bool allocating; /* into an unallocated cluster of a thin blob */
	uint64_t start;
	uint64_t ack;
};

static struct {
	struct ust_crashsim *cs;
	struct ust_io_channel *ch;
	struct ust_blob_store *bs;
	uint64_t init_start, init_ack;
	struct oblob b[NB];
	uint32_t nb;
	struct owrite w[NW];
	uint32_t nw;
	uint64_t nev;
} g;

static uint64_t now(void)
{
	return ust_crashsim_num_events(g.cs);
}

static void xvalue(uint32_t xi, uint32_t ver, uint32_t len, uint8_t *out)
{
	uint32_t i;

	for (i = 0; i < len; i++) {
		out[i] = (uint8_t)(i * 7u + ver * 13u + xi * 101u + (i >> 8));
	}
}

static void stamp_units(uint8_t *buf, uint32_t stamp, uint32_t b, uint64_t unit, uint32_t n)
{
	uint32_t u, i, w[BLOCK / 4];

	for (u = 0; u < n; u++) {
		for (i = 0; i < BLOCK / 4; i += 4) {
			w[i] = STAMP_MAGIC;
			w[i + 1] = stamp;
			w[i + 2] = b;
			w[i + 3] = (uint32_t)(unit + u) ^ (i << 16);
		}
		memcpy(buf + (size_t)u * BLOCK, w, BLOCK);
	}
}

#define UNIT_ZERO 0u
#define UNIT_BAD UINT32_MAX

/* Which write's stamp a unit carries: UNIT_ZERO, a stamp, or UNIT_BAD. */
static uint32_t unit_class(const uint8_t *p, uint32_t b, uint64_t unit)
{
	uint8_t want[BLOCK];
	uint32_t stamp, i;

	for (i = 0; i < BLOCK && p[i] == 0; i++) {
	}
	if (i == BLOCK) {
		return UNIT_ZERO;
	}
	memcpy(&stamp, p + 4, 4);
	if (stamp == UNIT_ZERO || stamp == UNIT_BAD) {
		return UNIT_BAD;
	}
	stamp_units(want, stamp, b, unit, 1);
	return memcmp(p, want, BLOCK) == 0 ? stamp : UNIT_BAD;
}

static void push_state(uint32_t b, uint64_t start)
{
	struct oblob *o = &g.b[b];

	assert_true(o->nstates < NS);
	o->cur.start = start;
	o->cur.ack = UINT64_MAX;
	o->st[o->nstates++] = o->cur;
}

/* ---- workload operations ----------------------------------------------------------------- */

/* Operations in flight together: each one's completion is recorded. */
struct pend {
	struct bt_done d;
	uint32_t b;
	int kind; /* 0 state change, 1 data write, 2 flush only */
	uint32_t idx;
	/* Kept alive until the operation completes. */
	struct ust_blob_xattr x[2];
	uint8_t *buf[2];
};

#define NP 16
static struct pend g_p[NP];
static uint32_t g_np;

static struct pend *pend_new(uint32_t b, int kind, uint32_t idx)
{
	struct pend *p;

	assert_true(g_np < NP);
	p = &g_p[g_np++];
	memset(p, 0, sizeof(*p));
	p->b = b;
	p->kind = kind;
	p->idx = idx;
	return p;
}

/* Wait for everything in flight and record the acknowledgements. */
static void settle(void)
{
	uint32_t i;

	bt_poll();
	for (i = 0; i < g_np; i++) {
		struct pend *p = &g_p[i];

		assert_true(p->d.done);
		assert_int_equal(p->d.rc, 0);
		if (p->kind == 0) {
			g.b[p->b].st[p->idx].ack = p->d.at_event;
			if (g.b[p->b].id == 0) {
				g.b[p->b].id = p->d.id;
			}
		} else if (p->kind == 1) {
			g.w[p->idx].ack = p->d.at_event;
		}
		free(p->buf[0]);
		free(p->buf[1]);
	}
	g_np = 0;
}

static uint32_t new_blob(const char *name)
{
	struct oblob *o;

	assert_true(g.nb < NB);
	o = &g.b[g.nb];
	memset(o, 0, sizeof(*o));
	o->name = name;
	o->cur.ack = 0;
	o->st[0] = o->cur; /* not existing, since forever */
	o->nstates = 1;
	return g.nb++;
}

static void set_x(uint32_t b, uint32_t xi, uint32_t ver, uint32_t len)
{
	struct oblob *o = &g.b[b];
	uint8_t *v = malloc(len ? len : 1);
	int rc;

	xvalue(xi, ver, len, v);
	if (o->blob != NULL) {
		rc = g_xinternal[xi] ? ust_blob_set_internal_xattr(o->blob, g_xname[xi], v, len)
				     : ust_blob_set_xattr(o->blob, g_xname[xi], v, len);
		assert_int_equal(rc, 0);
	}
	free(v);
	o->cur.xver[xi] = ver;
	o->cur.xlen[xi] = len;
}

static void remove_x(uint32_t b, uint32_t xi)
{
	struct oblob *o = &g.b[b];
	int rc = g_xinternal[xi] ? ust_blob_remove_internal_xattr(o->blob, g_xname[xi])
				 : ust_blob_remove_xattr(o->blob, g_xname[xi]);

	assert_int_equal(rc, 0);
	o->cur.xver[xi] = 0;
	o->cur.xlen[xi] = 0;
}

/* Issue a create (in flight until settle()); xattrs "a" and "i" at version xa if xa != 0. */
static void op_create(uint32_t b, uint64_t nclu, bool thin, uint32_t xa, uint32_t xalen)
{
	struct oblob *o = &g.b[b];
	struct ust_blob_opts opts;
	struct pend *p;
	uint64_t i;

	o->cur.exists = true;
	o->cur.thin = thin;
	o->cur.nclu = nclu;
	o->cur.nalloc = thin ? 0 : nclu;
	for (i = 0; i < MAXCLU; i++) {
		o->allocated[i] = !thin && i < nclu;
	}
	ust_blob_opts_init(&opts);
	opts.num_clusters = nclu;
	opts.thin_provision = thin;
	if (xa != 0) {
		o->cur.xver[0] = o->cur.xver[3] = xa;
		o->cur.xlen[0] = o->cur.xlen[3] = xalen;
	}
	push_state(b, now());
	p = pend_new(b, 0, o->nstates - 1);
	if (xa != 0) {
		p->buf[0] = malloc(xalen + 1);
		p->buf[1] = malloc(xalen + 1);
		xvalue(0, xa, xalen, p->buf[0]);
		xvalue(3, xa, xalen, p->buf[1]);
		p->x[0] = (struct ust_blob_xattr){.name = "a", .value = p->buf[0], .value_len = xalen};
		p->x[1] = (struct ust_blob_xattr){
			.name = "i", .value = p->buf[1], .value_len = xalen, .internal = true};
		opts.xattrs = p->x;
		opts.xattr_count = 2;
	}
	ust_bs_create_blob(g.bs, &opts, bt_id_cb, &p->d);
}

static void do_open(uint32_t b)
{
	assert_int_equal(bt_open(g.bs, g.b[b].id, &g.b[b].blob), 0);
}

static void do_close(uint32_t b)
{
	assert_int_equal(bt_close(g.b[b].blob), 0);
	g.b[b].blob = NULL;
}

/* Commit the in-memory model of b with a sync (in flight until settle()). */
static void op_sync(uint32_t b)
{
	struct pend *p;

	push_state(b, now());
	p = pend_new(b, 0, g.b[b].nstates - 1);
	ust_blob_sync_md(g.b[b].blob, bt_op_cb, &p->d);
}

/* A sync with no metadata change: only a flush. */
static void op_flush(uint32_t b)
{
	struct pend *p = pend_new(b, 2, 0);

	ust_blob_sync_md(g.b[b].blob, bt_op_cb, &p->d);
}

static void op_resize(uint32_t b, uint64_t n)
{
	struct oblob *o = &g.b[b];
	uint64_t i;

	assert_true(n <= MAXCLU);
	assert_int_equal(bt_resize(o->blob, n), 0);
	for (i = n; i < MAXCLU; i++) {
		if (o->allocated[i] && o->cur.thin) {
			o->cur.nalloc--;
		}
		o->allocated[i] = false;
	}
	if (!o->cur.thin) {
		for (i = 0; i < n; i++) {
			o->allocated[i] = true;
		}
		o->cur.nalloc = n;
	}
	o->cur.nclu = n;
	op_sync(b);
}

/* A write within one cluster of b (in flight until settle()). */
static void op_write(uint32_t b, uint64_t unit, uint32_t n)
{
	struct oblob *o = &g.b[b];
	uint64_t c = unit / UPC;
	struct owrite *w;
	struct pend *p;
	uint8_t *buf;

	assert_true(g.nw < NW);
	assert_true((unit + n - 1) / UPC == c && c < o->cur.nclu);
	w = &g.w[g.nw];
	w->b = b;
	w->unit = unit;
	w->n = n;
	w->stamp = g.nw + 1;
	w->allocating = !o->allocated[c];
	w->start = now();
	w->ack = UINT64_MAX;
	/*
	 * A thin allocation is not a blob state of its own: allocations of one
	 * blob in flight together may commit in any order and together with
	 * other changes. check_data() checks them cluster by cluster.
	 */
	if (w->allocating) {
		o->allocated[c] = true;
		o->cur.nalloc++;
	}
	p = pend_new(b, 1, g.nw);
	buf = malloc((size_t)n * BLOCK);
	p->buf[0] = buf;
	stamp_units(buf, w->stamp, b, unit, n);
	g.nw++;
	ust_blob_write(o->blob, g.ch, buf, unit, n, bt_op_cb, &p->d);
}

static void op_delete(uint32_t b)
{
	struct oblob *o = &g.b[b];
	struct pend *p;

	memset(&o->cur, 0, sizeof(o->cur));
	memset(o->allocated, 0, sizeof(o->allocated));
	push_state(b, now());
	p = pend_new(b, 0, o->nstates - 1);
	ust_bs_delete_blob(g.bs, o->id, bt_op_cb, &p->d);
}

/* The scripted workload, recorded from the blank device on. */
static void run_workload(void)
{
	uint32_t A, T, K, D, E, X, S[6], i;
	uint64_t rs = 0x9e3779b97f4a7c15ull;
	struct bt_done d = {0};

	bt_crash_start(g.cs);

	/* Format. */
	g.init_start = now();
	{
		struct ust_bs_opts o;

		ust_bs_opts_init(&o);
		o.cluster_size = CLUSTER;
		o.max_blobs = MAX_BLOBS;
		ust_bs_init("CS0", &o, bt_bs_cb, &d);
		bt_poll();
		assert_true(d.done);
		assert_int_equal(d.rc, 0);
		g.bs = d.bs;
		g.init_ack = d.at_event;
	}
	g.ch = ust_bs_alloc_io_channel(g.bs);
	assert_non_null(g.ch);

	A = new_blob("A");
	T = new_blob("T");
	K = new_blob("K");
	D = new_blob("D");
	E = new_blob("E");
	for (i = 0; i < 6; i++) {
		S[i] = new_blob("S");
	}

	/* Three creates in flight together. */
	op_create(A, 2, false, 1, 40);
	op_create(T, 16, true, 0, 0);
	op_create(K, 4, false, 0, 0);
	settle();
	do_open(A);
	do_open(T);
	do_open(K);

	/* A partial thin write (fill + flush), a whole-cluster one, a thick
	 * overwrite and an xattr commit, all in flight together. */
	op_write(T, 5, 3);
	op_write(T, 1 * UPC, UPC);
	op_write(K, 0, 8);
	set_x(A, 1, 1, 100);
	op_sync(A);
	settle();

	op_write(T, 6, 1);           /* overwrite inside an allocated cluster */
	op_write(T, 3 * UPC + 60, 4); /* allocation ending at the cluster end */
	settle();

	op_resize(A, 6);
	settle();
	set_x(A, 2, 1, 10000); /* three chain pages */
	op_sync(A);
	settle();

	/* A blob that lives and dies, then its slot is reused. */
	op_create(D, 4, true, 2, 8);
	settle();
	do_open(D);
	op_write(D, 0, 2);
	settle();
	op_write(D, 2 * UPC + 7, 9);
	op_write(K, 3 * UPC, 16);
	settle();
	do_close(D);
	op_delete(D);
	settle();
	op_create(E, 2, true, 3, 20);
	settle();

	/* Shrink (frees after commit), removal, a bigger chain. */
	op_resize(A, 1);
	settle();
	remove_x(A, 1);
	op_sync(A);
	settle();
	set_x(A, 2, 2, 20000);
	op_sync(A);
	op_flush(K); /* K's earlier writes become durable */
	settle();
	op_write(K, UPC + 3, 5);
	op_resize(T, 24);
	settle();
	op_write(T, 20 * UPC + 1, 2);
	settle();

	/* Many small blobs in flight, then several deletes in flight. */
	for (i = 0; i < 6; i++) {
		op_create(S[i], 1, (i & 1) != 0, i + 1, 8 + i);
	}
	settle();
	op_delete(S[0]);
	op_delete(S[2]);
	op_delete(S[3]);
	set_x(A, 0, 4, 33);
	op_sync(A);
	settle();

	remove_x(A, 2); /* frees the chain pages */
	op_sync(A);
	op_write(K, 2 * UPC, UPC);
	settle();

	/* Random thin allocations and overwrites interleaved with xattr commits. */
	for (i = 0; i < 14; i++) {
		uint64_t c = bt_rand(&rs) % 24;
		uint64_t u = bt_rand(&rs) % UPC;
		uint64_t most = UPC - u < 12 ? UPC - u : 12;
		uint32_t n = 1 + (uint32_t)(bt_rand(&rs) % most);

		if (i % 5 == 3) {
			u = 0;
			n = UPC; /* a whole cluster: no fill, but still flushed before the map */
		}
		op_write(T, c * UPC + u, n);
		if (i % 3 == 0) {
			/* Another allocation of the same blob in flight (another cluster). */
			op_write(T, ((c + 1 + i) % 24) * UPC + 2 * i, 2);
		}
		settle();
		if (i % 4 == 1) {
			set_x(T, 1, 10 + i, 50 + i);
			op_sync(T);
			op_write(K, (i % 4) * UPC + 40, 3);
			settle();
		}
	}
	op_flush(T);
	settle();

	/*
	 * A thin blob of three extent pages (format 8.2). Allocations on two
	 * pages in flight together: each sync patches only the changed extent
	 * pages and the root. An xattr commit re-serialises it, reusing the
	 * unchanged pages; a grow adds a fourth page and changes the third's
	 * coverage; a shrink drops pages.
	 */
	X = new_blob("X");
	op_create(X, 3000, true, 5, 16);
	settle();
	do_open(X);
	for (i = 0; i < 12; i++) {
		uint64_t c = bt_rand(&rs) % 3000;

		op_write(X, c * UPC + i % 7, 3);
		op_write(X, ((c + 1009) % 3000) * UPC + 1, 2);
		settle();
		if (i == 5) {
			set_x(X, 1, 3, 60);
			op_sync(X);
			op_write(X, ((c + 17) % 3000) * UPC, UPC);
			settle();
		}
	}
	op_resize(X, 3100);
	settle();
	op_write(X, 3050 * UPC + 5, 4);
	op_write(X, 2990 * UPC, 1);
	settle();
	op_resize(X, 2000);
	settle();
	op_write(X, 1500 * UPC + 2, 2);
	op_write(X, 10 * UPC + 2, 2);
	settle();

	/* Clean shutdown: bitmaps, clean flag. */
	do_close(X);
	do_close(A);
	do_close(T);
	do_close(K);
	ust_bs_free_io_channel(g.ch);
	g.ch = NULL;
	bt_poll();
	assert_int_equal(bt_unload(g.bs), 0);
	g.bs = NULL;
	g.nev = now();
	ust_crashsim_stop(g.cs);
}

/* ---- checking one crash image -------------------------------------------------------------- */

struct seen {
	bool exists;
	struct ostate st;
	bool x_bad;         /* an xattr not in the model, or a value no version has */
	uint8_t *xv[NX];    /* observed values */
};

static struct {
	uint64_t cut, seed;
	struct ust_crashsim_outcome out;
	uint64_t checked_units;
} g_c;

static void report(const char *what, uint32_t b)
{
	print_error("crash cut %" PRIu64 " of %" PRIu64 ", seed %" PRIu64
		    ": durable_before %" PRIu64 ", survival %d, tear %d (op %" PRIu64
		    "): blob %s (#%u): %s\n",
		    g_c.cut, g.nev, g_c.seed, g_c.out.durable_before, (int)g_c.out.survival,
		    (int)g_c.out.tear, g_c.out.torn_op, b < NB ? g.b[b].name : "?", b, what);
}

static bool state_matches(const struct oblob *o, const struct ostate *s, const struct seen *v)
{
	uint8_t *want;
	uint32_t xi;
	bool ok = true;

	if (s->exists != v->exists) {
		return false;
	}
	if (!s->exists) {
		return true;
	}
	(void)o;
	/* A thin blob's allocations are checked by check_data(). */
	if (s->thin != v->st.thin || s->nclu != v->st.nclu ||
	    (!s->thin && s->nalloc != v->st.nalloc)) {
		return false;
	}
	for (xi = 0; xi < NX && ok; xi++) {
		if (s->xver[xi] != 0) {
			if (v->xv[xi] == NULL || v->st.xlen[xi] != s->xlen[xi]) {
				return false;
			}
			want = malloc(s->xlen[xi] + 1);
			xvalue(xi, s->xver[xi], s->xlen[xi], want);
			ok = memcmp(want, v->xv[xi], s->xlen[xi]) == 0;
			free(want);
		} else if (v->xv[xi] != NULL) {
			return false;
		}
	}
	return ok;
}

/* Index of the last state acknowledged before the cut. */
static uint32_t last_acked(const struct oblob *o, uint64_t cut)
{
	uint32_t s, m = 0;

	for (s = 0; s < o->nstates; s++) {
		if (o->st[s].ack <= cut) {
			m = s;
		}
	}
	return m;
}

static void dump_unit(uint32_t b, uint64_t unit, uint32_t s);

/* Which oracle state the loaded blob is in; fails the test if none. */
static uint32_t match_state(uint32_t b, const struct seen *v)
{
	const struct oblob *o = &g.b[b];
	uint32_t m = last_acked(o, g_c.cut), s;
	char msg[160];

	for (s = m; s < o->nstates; s++) {
		if (s > m && o->st[s].start >= g_c.cut) {
			break;
		}
		if (state_matches(o, &o->st[s], v)) {
			return s;
		}
	}
	snprintf(msg, sizeof(msg),
		 "in no allowed state (last acknowledged #%u of %u): exists %d, %" PRIu64
		 " clusters, %" PRIu64 " allocated, thin %d",
		 m, o->nstates, v->exists, v->st.nclu, v->st.nalloc, v->st.thin);
	report(msg, b);
	dump_unit(b, UINT64_MAX, m);
	fail();
	return 0;
}

static void collect_x(void *ctx, const char *name)
{
	struct seen *v = ctx;
	uint32_t xi;

	for (xi = 0; xi < NX; xi++) {
		if (!g_xinternal[xi] && strcmp(name, g_xname[xi]) == 0) {
			return;
		}
	}
	v->x_bad = true;
}

static void observe(struct ust_blob *blob, struct seen *v)
{
	const void *val;
	size_t len;
	uint32_t xi;
	int rc;

	memset(v, 0, sizeof(*v));
	v->exists = true;
	v->st.exists = true;
	v->st.thin = ust_blob_is_thin(blob);
	v->st.nclu = ust_blob_get_num_clusters(blob);
	v->st.nalloc = ust_blob_get_num_allocated_clusters(blob);
	for (xi = 0; xi < NX; xi++) {
		rc = g_xinternal[xi] ? ust_blob_get_internal_xattr(blob, g_xname[xi], &val, &len)
				     : ust_blob_get_xattr(blob, g_xname[xi], &val, &len);
		if (rc == 0) {
			v->xv[xi] = malloc(len + 1);
			memcpy(v->xv[xi], val, len);
			v->st.xlen[xi] = (uint32_t)len;
		} else {
			assert_int_equal(rc, -ENOENT);
		}
	}
	ust_blob_list_xattrs(blob, collect_x, v);
}

static void seen_free(struct seen *v)
{
	uint32_t xi;

	for (xi = 0; xi < NX; xi++) {
		free(v->xv[xi]);
	}
}

/*
 * Is write w certainly on the media at this cut? An allocating write is
 * acknowledged only after the commit that maps its cluster (and the flush
 * of its content); any other write once a flush submitted after its
 * acknowledgement completed (the crash's durability boundary).
 */
static bool write_durable(const struct owrite *w)
{
	if (w->allocating) {
		return w->ack <= g_c.cut;
	}
	return w->ack <= g_c.out.durable_before;
}

/* For a failure report: the writes to a unit, the blob's states and the log. */
static void dump_unit(uint32_t b, uint64_t unit, uint32_t s)
{
	struct ust_crashsim_event ev;
	uint32_t i;
	uint64_t e;

	print_error("blob state chosen: #%u\n", s);
	for (i = 0; i < g.b[b].nstates; i++) {
		print_error("  state #%u: start %" PRIu64 " ack %" PRIu64 " nclu %" PRIu64 "\n", i,
			    g.b[b].st[i].start, g.b[b].st[i].ack, g.b[b].st[i].nclu);
	}
	for (i = 0; i < g.nw; i++) {
		const struct owrite *w = &g.w[i];

		if (w->b == b && unit >= w->unit && unit < w->unit + w->n) {
			print_error("  write %u: units %" PRIu64 "+%u alloc %d start %" PRIu64
				    " ack %" PRIu64 "\n",
				    w->stamp, w->unit, w->n, w->allocating, w->start, w->ack);
		}
	}
	if (getenv("USTOR_CRASH_VERBOSE") == NULL) {
		return;
	}
	for (e = g_c.cut > 40 ? g_c.cut - 40 : 0; e < g.nev && e <= g_c.cut + 4; e++) {
		assert_int_equal(ust_crashsim_get_event(g.cs, e, &ev), 0);
		print_error("  ev %" PRIu64 ": %s type %d op %" PRIu64 " blocks %" PRIu64 "+%" PRIu64
			    " submit %" PRIu64 " complete %" PRIu64 "\n",
			    e, ev.kind == UST_CRASHSIM_EVENT_SUBMIT ? "submit  " : "complete",
			    (int)ev.io_type, ev.op, ev.offset_blocks, ev.num_blocks, ev.submit_event,
			    ev.complete_event);
	}
}

/* Every written unit of blob b in the state the load chose. */
static void check_data(uint32_t b, struct ust_blob *blob, uint32_t s)
{
	const struct ostate *st = &g.b[b].st[s];
	uint8_t *buf = malloc(CLUSTER);
	uint64_t c, u, unit, visible = 0, maybe_stale = 0, nalloc;
	uint32_t i, got, base;
	bool touched, ok, any, stale_ok;
	char msg[200];

	for (c = 0; c < st->nclu; c++) {
		touched = false;
		for (i = 0; i < g.nw && !touched; i++) {
			touched = g.w[i].b == b && g.w[i].unit / UPC == c;
		}
		/*
		 * An untouched cluster that a thin blob's map names anyway is
		 * caught by the allocation count below; skipping it keeps the
		 * check linear in the writes for blobs of thousands of clusters.
		 */
		if (!touched) {
			continue;
		}
		/*
		 * A new thin cluster's data is flushed before the map that names
		 * it (format 9.1 rule 5), even for a whole-cluster write: a
		 * mapped cluster never shows its previous (possibly a deleted
		 * blob's) content.
		 */
		stale_ok = false;
		assert_int_equal(bt_read(blob, g.ch, buf, c * UPC, UPC), 0);
		any = false;
		for (u = 0; u < UPC; u++) {
			unit = c * UPC + u;
			got = unit_class(buf + u * BLOCK, b, unit);
			any |= got != UNIT_ZERO;
			/* The baseline: the last write certainly durable, else zeros
			 * (a hole or the fill of a new thin cluster; a thick blob's
			 * never written unit may hold anything). */
			base = st->thin ? UNIT_ZERO : UNIT_BAD;
			for (i = 0; i < g.nw; i++) {
				const struct owrite *w = &g.w[i];

				if (w->b == b && unit >= w->unit && unit < w->unit + w->n &&
				    write_durable(w)) {
					base = w->stamp;
				}
			}
			if (base == UNIT_BAD) {
				continue;
			}
			ok = got == base;
			/* ... or any write to the unit issued after it, before the cut. */
			for (i = 0; i < g.nw && !ok; i++) {
				const struct owrite *w = &g.w[i];

				ok = w->b == b && unit >= w->unit && unit < w->unit + w->n &&
				     w->stamp > base && w->start < g_c.cut && got == w->stamp;
			}
			g_c.checked_units++;
			if (!ok && stale_ok) {
				continue;
			}
			if (!ok) {
				snprintf(msg, sizeof(msg),
					 "unit %" PRIu64 " holds %s%u, expected write %u or a later one",
					 unit, got == UNIT_BAD ? "garbage " : "write ",
					 got == UNIT_BAD ? 0 : got, base);
				report(msg, b);
				dump_unit(b, unit, s);
				fail();
			}
		}
		visible += any;
		maybe_stale += stale_ok && !any;
	}
	free(buf);
	/*
	 * Every write into a thin blob is non-zero, so a cluster the map names
	 * shows data: a mapped cluster reading as zeros is a map committed
	 * before its data (rule 5), a cluster with data not counted is a lost
	 * allocation.
	 */
	nalloc = ust_blob_get_num_allocated_clusters(blob);
	if (st->thin && (nalloc < visible || nalloc > visible + maybe_stale)) {
		snprintf(msg, sizeof(msg), "%" PRIu64 " clusters allocated, %" PRIu64 " hold data",
			 nalloc, visible);
		report(msg, b);
		fail();
	}
}

static uint32_t oracle_of(ust_blob_id id)
{
	uint32_t b;

	for (b = 0; b < g.nb; b++) {
		if (g.b[b].id == id) {
			return b;
		}
	}
	return NB;
}

/* Use the recovered store, then reload it clean: the repaired state is sound. */
static void exercise(struct ust_blob_store *bs, uint64_t free_after_load)
{
	struct ust_io_channel *ch = ust_bs_alloc_io_channel(bs);
	struct ust_blob *blob;
	uint8_t buf[BLOCK * 2];
	ust_blob_id id, nid;
	uint64_t free_now, used = 0;

	memset(buf, 0xa5, sizeof(buf));
	id = g.b[1].id; /* T */
	if (bt_open(bs, id, &blob) == 0) {
		uint64_t n = ust_blob_get_num_clusters(blob);
		uint64_t before = ust_blob_get_num_allocated_clusters(blob);

		assert_int_equal(bt_write(blob, ch, buf, (n - 1) * UPC + 3, 2), 0);
		used += ust_blob_get_num_allocated_clusters(blob) - before;
		assert_int_equal(bt_close(blob), 0);
	}
	assert_int_equal(bt_create(bs, 2, false, &nid), 0);
	used += 2;
	free_now = ust_bs_get_free_cluster_count(bs);
	assert_int_equal(free_now, free_after_load - used);
	ust_bs_free_io_channel(ch);
	bt_poll();
	assert_int_equal(bt_unload(bs), 0);
	assert_int_equal(bt_load("Img0", &bs), 0);
	assert_int_equal(ust_bs_get_free_cluster_count(bs), free_now);
	assert_int_equal(ust_bs_get_damaged(bs, NULL, 0), 0);
	assert_int_equal(bt_open(bs, nid, &blob), 0);
	assert_int_equal(ust_blob_get_num_clusters(blob), 2);
	assert_int_equal(bt_close(blob), 0);
	assert_int_equal(bt_unload(bs), 0);
}

static void fsck_done(void *arg, struct ust_bs_fsck_report *report, int rc)
{
	struct ust_bs_fsck_report **out = arg;

	assert_int_equal(rc, 0);
	*out = report;
}

/* blobtool's fsck on the store the recovery left (after a clean unload). */
static void check_fsck(void)
{
	struct ust_bs_fsck_report *rep = NULL;
	struct ust_bs_fsck_opts o;

	ust_bs_fsck_opts_init(&o);
	ust_bs_fsck("Img0", &o, fsck_done, &rep);
	bt_poll();
	assert_non_null(rep);
	if (rep->errors != 0 || rep->leaked_clusters != 0 || rep->leaked_pages != 0) {
		report("fsck finds errors after recovery and a clean unload", NB);
		ust_bs_fsck_report_print(rep, stderr);
		fail();
	}
	ust_bs_fsck_report_free(rep);
}

static void check_cut(struct ust_crashsim_image *img, uint64_t cut, uint64_t seed, bool use,
		      bool fsck)
{
	struct ust_crashsim_crash_opts opts = {.cut = cut, .seed = seed};
	struct ust_blob_store *bs;
	struct ust_blob *blob;
	struct bt_done d = {0};
	struct seen v[NB];
	uint64_t held = 0, total, freec;
	uint32_t b, s;
	int rc;

	g_c.cut = cut;
	g_c.seed = seed;
	assert_int_equal(ust_crashsim_image_build(img, &opts, &g_c.out), 0);
	rc = bt_load("Img0", &bs);
	if (cut < g.init_ack) {
		/* Format had not finished: no store, or an empty one. */
		if (rc != 0) {
			if (rc != -ENODATA && rc != -EUCLEAN && rc != -EBADMSG) {
				report("format interrupted: load failed with an unexpected error", NB);
				print_error("rc %d\n", rc);
				fail();
			}
			return;
		}
	} else if (rc != 0) {
		report("the store does not load", NB);
		print_error("rc %d\n", rc);
		fail();
	}
	if (ust_bs_get_damaged(bs, NULL, 0) != 0) {
		struct ust_bs_damage dm;

		ust_bs_get_damaged(bs, &dm, 1);
		report("damage reported after a crash", NB);
		print_error("slot %u: %s\n", dm.slot, dm.msg);
		fail();
	}
	memset(v, 0, sizeof(v));
	g.ch = ust_bs_alloc_io_channel(bs);
	assert_non_null(g.ch);
	ust_bs_iter_first(bs, bt_blob_cb, &d);
	bt_poll();
	while (d.rc == 0) {
		blob = d.blob;
		b = oracle_of(ust_blob_get_id(blob));
		if (b == NB) {
			report("a blob nobody created", NB);
			print_error("id 0x%" PRIx64 "\n", ust_blob_get_id(blob));
			fail();
		}
		observe(blob, &v[b]);
		if (v[b].x_bad) {
			report("an unknown user xattr", b);
			fail();
		}
		s = match_state(b, &v[b]);
		held += v[b].st.nalloc;
		check_data(b, blob, s);
		memset(&d, 0, sizeof(d));
		ust_bs_iter_next(bs, blob, bt_blob_cb, &d);
		bt_poll();
	}
	assert_int_equal(d.rc, -ENOENT);
	/* Blobs the iteration did not show: they must be allowed not to exist. */
	for (b = 0; b < g.nb; b++) {
		if (!v[b].exists) {
			match_state(b, &v[b]);
		}
		seen_free(&v[b]);
	}
	/* Allocation state through the API: every cluster is free or held. */
	total = ust_bs_get_total_data_cluster_count(bs);
	freec = ust_bs_get_free_cluster_count(bs);
	if (freec + held != total) {
		report("free clusters + held clusters != total", NB);
		print_error("free %" PRIu64 ", held %" PRIu64 ", total %" PRIu64 "\n", freec, held,
			    total);
		fail();
	}
	ust_bs_free_io_channel(g.ch);
	g.ch = NULL;
	bt_poll();
	if (use) {
		exercise(bs, freec);
	} else {
		assert_int_equal(bt_unload(bs), 0);
	}
	if (fsck) {
		check_fsck();
	}
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *s = getenv(name);

	return s != NULL && *s != '\0' ? strtoull(s, NULL, 0) : def;
}

/* Cuts: every event around each flush, the ends, then evenly spread ones. */
static uint64_t pick_cuts(uint64_t *cuts, uint64_t want)
{
	struct ust_crashsim_event ev;
	uint64_t n = 0, i, k, step;
	uint8_t *mark = calloc(g.nev + 1, 1);

	if (want > g.nev) {
		for (i = 0; i <= g.nev; i++) {
			mark[i] = 1;
		}
	} else {
		mark[0] = mark[g.nev] = 1;
		n = 2;
		for (i = 0; i < g.nev && n < want / 2; i++) {
			assert_int_equal(ust_crashsim_get_event(g.cs, i, &ev), 0);
			if (ev.io_type != UST_BDEV_IO_TYPE_FLUSH) {
				continue;
			}
			for (k = i > 1 ? i - 1 : 0; k <= i + 2 && k <= g.nev; k++) {
				n += !mark[k];
				mark[k] = 1;
			}
		}
		step = g.nev / want + 1;
		for (i = 1; i < g.nev && n < want; i += step) {
			n += !mark[i];
			mark[i] = 1;
		}
	}
	n = 0;
	for (i = 0; i <= g.nev; i++) {
		if (mark[i]) {
			cuts[n++] = i;
		}
	}
	free(mark);
	return n;
}

static void test_crash_workload(void **state)
{
	struct ust_crashsim_image *img;
	uint64_t ncuts = env_u64("USTOR_CRASH_CUTS", 700);
	uint64_t nseeds = env_u64("USTOR_CRASH_SEEDS", 5);
	uint64_t *cuts, n, i, seed, checks = 0;

	(void)state;
	memset(&g, 0, sizeof(g));
	assert_int_equal(bt_malloc_create("M0", DEV_BYTES, BLOCK), 0);
	g.cs = bt_crash_create("M0", true);
	run_workload();

	/* Oracle sanity: every operation was acknowledged inside the log. */
	for (i = 0; i < g.nw; i++) {
		assert_true(g.w[i].ack <= g.nev);
	}
	assert_int_equal(ust_crashsim_image_create(g.cs, "Img0", &img), 0);
	cuts = calloc(g.nev + 1, sizeof(*cuts));
	n = pick_cuts(cuts, ncuts);
	for (i = 0; i < n; i++) {
		for (seed = 0; seed < nseeds; seed++) {
			check_cut(img, cuts[i], seed * 7919 + cuts[i], seed == 0 && i % 16 == 5,
				  seed == 1);
			checks++;
		}
	}
	print_message("crash: %" PRIu64 " events, %" PRIu64 " writes; %" PRIu64
		      " cuts x %" PRIu64 " seeds = %" PRIu64 " loads, %" PRIu64 " units checked\n",
		      g.nev, (uint64_t)g.nw, n, nseeds, checks, g_c.checked_units);
	free(cuts);
	bt_crash_destroy(img, "M0");
	g.cs = NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crash_workload),
	};

	ust_log_set_print_level(UST_LOG_DISABLED);
	return cmocka_run_group_tests(tests, bt_group_setup, bt_group_teardown);
}
