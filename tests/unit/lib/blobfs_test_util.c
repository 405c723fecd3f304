/*
 * The callbacks of tests/unit/lib/blobfs_test.h: each marks its struct
 * bft_res done and copies what it was given (entries, attributes and
 * statfs by value, so the record stays valid after the call).
 */
#include "blobfs_test.h"

void bft_fs_cb(void *arg, struct ust_blobfs *fs, int rc)
{
	struct bft_res *r = arg;

	r->done = true;
	r->rc = rc;
	r->fs = fs;
}

void bft_op_cb(void *arg, int rc)
{
	struct bft_res *r = arg;

	r->done = true;
	r->rc = rc;
}

void bft_entry_cb(void *arg, const struct ust_blobfs_entry *e, int rc)
{
	struct bft_res *r = arg;

	r->done = true;
	r->rc = rc;
	if (e != NULL) {
		r->e = *e;
	}
}

void bft_attr_cb(void *arg, const struct ust_blobfs_attr *a, int rc)
{
	struct bft_res *r = arg;

	r->done = true;
	r->rc = rc;
	if (a != NULL) {
		r->a = *a;
	}
}

void bft_open_cb(void *arg, struct ust_blobfs_file *fh, int rc)
{
	struct bft_res *r = arg;

	r->done = true;
	r->rc = rc;
	r->fh = fh;
}

void bft_create_cb(void *arg, const struct ust_blobfs_entry *e, struct ust_blobfs_file *fh, int rc)
{
	struct bft_res *r = arg;

	r->done = true;
	r->rc = rc;
	r->fh = fh;
	if (e != NULL) {
		r->e = *e;
	}
}

void bft_size_cb(void *arg, int64_t n)
{
	struct bft_res *r = arg;

	r->done = true;
	r->rc = n < 0 ? (int)n : 0;
	r->n = n;
}

void bft_statfs_cb(void *arg, const struct ust_blobfs_statfs *st, int rc)
{
	struct bft_res *r = arg;

	r->done = true;
	r->rc = rc;
	if (st != NULL) {
		r->st = *st;
	}
}
