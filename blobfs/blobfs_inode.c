/*
 * blobfs inodes in memory: the inode cache (every live inode touched stays
 * loaded, its blob open, until unmount; deleted ones leave once nothing can
 * name them, bfs_evict_deleted), loading an inode from its blob's
 * xattrs (and a directory's blocks, blobfs_dir.c) and storing it back, and
 * the refs that are an inode's hard links. Everything here runs on the
 * metadata thread and changes blob xattrs in memory only; the callers sync.
 * An inode is handed out only once it is completely loaded.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>

#include "ustor/log.h"

#include "blobfs_internal.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "on-disk records are little-endian");

struct bfs_waiter {
	struct bfs_inode **out;
	void (*cb)(struct bfs_req *req);
	struct bfs_req *req;
	struct bfs_waiter *next;
};

uint64_t bfs_ino_in(struct ust_blobfs *fs, uint64_t ino)
{
	return ino == UST_BLOBFS_ROOT_INO ? fs->root->ino : ino;
}

uint64_t bfs_ino_out(struct ust_blobfs *fs, uint64_t ino)
{
	return fs->root != NULL && ino == fs->root->ino ? UST_BLOBFS_ROOT_INO : ino;
}

void bfs_now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

uint8_t bfs_mode_to_dt(uint32_t mode)
{
	return (uint8_t)((mode & S_IFMT) >> 12);
}

/* ---- the cache ------------------------------------------------------------------------ */

static size_t ibucket(struct ust_blobfs *fs, uint64_t ino)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ull) >> 20) % fs->nibuckets;
}

struct bfs_inode *bfs_icache_find(struct ust_blobfs *fs, uint64_t ino)
{
	struct bfs_inode *ip;

	for (ip = fs->itab[ibucket(fs, ino)]; ip != NULL; ip = ip->hnext) {
		if (ip->ino == ino) {
			return ip;
		}
	}
	return NULL;
}

static void icache_grow(struct ust_blobfs *fs)
{
	size_t n = fs->nibuckets * 4, i, b;
	struct bfs_inode **t = calloc(n, sizeof(*t)), *ip, *next;

	if (t == NULL) {
		return; /* stay at the old size: slower lookups, nothing lost */
	}
	for (i = 0; i < fs->nibuckets; i++) {
		for (ip = fs->itab[i]; ip != NULL; ip = next) {
			next = ip->hnext;
			b = (size_t)((ip->ino * 0x9e3779b97f4a7c15ull) >> 20) % n;
			ip->hnext = t[b];
			t[b] = ip;
		}
	}
	free(fs->itab);
	fs->itab = t;
	fs->nibuckets = n;
}

static void icache_insert(struct ust_blobfs *fs, struct bfs_inode *ip)
{
	size_t b;

	if (fs->ninodes >= fs->nibuckets * 2) {
		icache_grow(fs);
	}
	b = ibucket(fs, ip->ino);
	ip->hnext = fs->itab[b];
	fs->itab[b] = ip;
	fs->ninodes++;
}

void bfs_icache_remove(struct ust_blobfs *fs, struct bfs_inode *ip)
{
	struct bfs_inode **pp = &fs->itab[ibucket(fs, ip->ino)];

	while (*pp != NULL && *pp != ip) {
		pp = &(*pp)->hnext;
	}
	if (*pp == ip) {
		*pp = ip->hnext;
		fs->ninodes--;
	}
}

void bfs_inode_free(struct bfs_inode *ip)
{
	bfs_dir_free(ip);
	free(ip->refs);
	free(ip->link);
	free(ip);
}

/*
 * Deleted inodes stay cached while FUSE may still name them (lookups not
 * forgotten) or a handle is open; after that nothing can reach them by
 * number, and only a request in flight could still hold the pointer. So
 * they are queued and freed when the last request completes. Without this,
 * every file ever created and unlinked kept its inode in memory until
 * unmount.
 */
void bfs_evict_queue(struct ust_blobfs *fs, struct bfs_inode *ip)
{
	uint64_t *q;
	size_t cap;

	if (ip == fs->root || !ip->deleted || ip->nlookup > 0 || ip->nopen > 0) {
		return;
	}
	if (fs->nevict == fs->evict_cap) {
		cap = fs->evict_cap != 0 ? fs->evict_cap * 2 : 64;
		q = realloc(fs->evict_q, cap * sizeof(*q));
		if (q == NULL) {
			return; /* it stays cached: memory, not correctness */
		}
		fs->evict_q = q;
		fs->evict_cap = cap;
	}
	fs->evict_q[fs->nevict++] = ip->ino;
}

static bool evictable(const struct ust_blobfs *fs, const struct bfs_inode *ip)
{
	return ip != fs->root && ip->deleted && ip->blob == NULL && ip->nlookup == 0 &&
	       ip->nopen == 0 && ip->nsyncs == 0 && !ip->loading && ip->waiters == NULL &&
	       ip->io_active == NULL && ip->io_waiting == NULL;
}

void bfs_evict_deleted(struct ust_blobfs *fs)
{
	struct bfs_inode *ip;
	size_t i;

	for (i = 0; i < fs->nevict; i++) {
		ip = bfs_icache_find(fs, fs->evict_q[i]);
		if (ip != NULL && evictable(fs, ip)) {
			bfs_icache_remove(fs, ip);
			bfs_inode_free(ip);
		}
	}
	fs->nevict = 0;
}

/* ---- decoding and encoding ------------------------------------------------------------- */

static struct timespec ts_in(const struct bfs_disk_ts *t)
{
	struct timespec ts = {.tv_sec = (time_t)t->sec, .tv_nsec = t->nsec};

	return ts;
}

static struct bfs_disk_ts ts_out(const struct timespec *ts)
{
	struct bfs_disk_ts t = {.sec = ts->tv_sec, .nsec = (uint32_t)ts->tv_nsec};

	return t;
}

int bfs_encode_inode(const struct bfs_inode *ip, struct bfs_disk_inode *d)
{
	memset(d, 0, sizeof(*d));
	d->magic = BFS_INODE_MAGIC;
	d->version = BFS_VERSION;
	d->mode = ip->mode;
	d->uid = ip->uid;
	d->gid = ip->gid;
	d->rdev = ip->rdev;
	d->size = ip->size;
	d->birth_seq = ip->birth_seq;
	d->dir_seed = ip->dir_seed;
	d->atime = ts_out(&ip->atime);
	d->mtime = ts_out(&ip->mtime);
	d->ctime = ts_out(&ip->ctime);
	d->btime = ts_out(&ip->btime);
	return 0;
}

/*
 * The attributes of docs/blobfs-format.md 4 that the code relies on: a
 * known file type, timestamps with nanoseconds below one second, and a
 * regular file's size inside its blob (4.1: the blob has ceil(size /
 * cluster) clusters or more), so that a damaged size can neither make reads
 * run past the blob nor make a write or truncate grow it to match.
 */
static bool inode_attrs_valid(const struct bfs_inode *ip, const struct bfs_disk_inode *d)
{
	const struct bfs_disk_ts *ts[] = {&d->atime, &d->mtime, &d->ctime, &d->btime};
	size_t i;

	switch (d->mode & S_IFMT) {
	case S_IFREG:
		if (d->size > ust_blob_get_num_clusters(ip->blob) * ip->fs->cluster) {
			return false;
		}
		break;
	case S_IFDIR:
	case S_IFLNK:
	case S_IFIFO:
	case S_IFSOCK:
	case S_IFCHR:
	case S_IFBLK:
		break;
	default:
		return false;
	}
	for (i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
		if (ts[i]->nsec >= 1000000000u) {
			return false;
		}
	}
	return true;
}

/* Read every xattr of an open inode blob into ip. */
int bfs_inode_parse(struct bfs_inode *ip)
{
	const struct bfs_disk_inode *d;
	const uint8_t *p;
	const void *v;
	size_t len, off;
	int rc;

	rc = ust_blob_get_internal_xattr(ip->blob, BFS_XA_INODE, &v, &len);
	if (rc != 0) {
		return -ESTALE; /* not a blobfs inode */
	}
	d = v;
	if (len < sizeof(*d) || d->magic != BFS_INODE_MAGIC) {
		/* blobfs's marker on a blob, but no inode in it: damage (9) */
		UST_ERRLOG("blobfs: inode 0x%" PRIx64 ": blobfs.inode damaged (%zu bytes)\n", ip->ino, len);
		return -EIO;
	}
	if (d->version != BFS_VERSION) {
		UST_ERRLOG("blobfs: inode 0x%" PRIx64 ": version %u unsupported\n", ip->ino, d->version);
		return -EIO;
	}
	if (!inode_attrs_valid(ip, d)) {
		UST_ERRLOG("blobfs: inode 0x%" PRIx64 ": attributes damaged (mode 0%o size %" PRIu64 ")\n",
			   ip->ino, d->mode, d->size);
		return -EIO;
	}
	ip->mode = d->mode;
	ip->uid = d->uid;
	ip->gid = d->gid;
	ip->rdev = d->rdev;
	ip->size = d->size;
	ip->birth_seq = d->birth_seq;
	ip->dir_seed = d->dir_seed;
	ip->atime = ts_in(&d->atime);
	ip->mtime = ts_in(&d->mtime);
	ip->ctime = ts_in(&d->ctime);
	ip->btime = ts_in(&d->btime);

	if (ust_blob_get_internal_xattr(ip->blob, BFS_XA_REFS, &v, &len) == 0) {
		p = v;
		for (off = 0; off + 10 <= len;) {
			uint64_t parent;
			uint16_t nl;
			char name[UST_BLOBFS_NAME_MAX + 1];

			memcpy(&parent, p + off, 8);
			memcpy(&nl, p + off + 8, 2);
			if (nl == 0 || nl > UST_BLOBFS_NAME_MAX || off + 10 + nl > len) {
				return -EIO;
			}
			memcpy(name, p + off + 10, nl);
			name[nl] = '\0';
			/* a ref is a directory entry's (parent, name): names as 4.2 */
			if (parent == 0 || parent == ip->ino || strlen(name) != nl || strchr(name, '/') != NULL) {
				return -EIO;
			}
			if (bfs_ref_add(ip, parent, name) != 0) {
				return -ENOMEM;
			}
			off += 10u + nl;
		}
		if (off != len) {
			return -EIO;
		}
	}
	if (S_ISDIR(ip->mode) && ip->nrefs > 1) {
		return -EIO; /* a directory has one name (4) */
	}
	if (S_ISLNK(ip->mode)) {
		/* the target: 1..4095 bytes without NUL, its length the inode's size (4) */
		if (ust_blob_get_internal_xattr(ip->blob, BFS_XA_LINK, &v, &len) != 0 || len == 0 ||
		    len >= UST_BLOBFS_PATH_MAX || len != ip->size || memchr(v, '\0', len) != NULL) {
			UST_ERRLOG("blobfs: symlink 0x%" PRIx64 ": target damaged\n", ip->ino);
			return -EIO;
		}
		ip->link = malloc(len + 1);
		if (ip->link == NULL) {
			return -ENOMEM;
		}
		memcpy(ip->link, v, len);
		ip->link[len] = '\0';
	}
	return 0;
}

/* The inode attributes and refs into the blob's xattrs (memory; caller syncs). */
void bfs_inode_store(struct ust_blobfs *fs, struct bfs_inode *ip)
{
	struct bfs_disk_inode d;
	int rc;

	(void)fs;
	bfs_encode_inode(ip, &d);
	rc = ust_blob_set_internal_xattr(ip->blob, BFS_XA_INODE, &d, sizeof(d));
	if (rc != 0) {
		/* 120 bytes replacing 120 bytes cannot run out of room */
		UST_ERRLOG("blobfs: inode 0x%" PRIx64 ": storing attributes: %d\n", ip->ino, rc);
	}
}

int bfs_refs_store(struct bfs_inode *ip)
{
	uint8_t *buf;
	size_t len = 0, i;
	int rc;

	if (ip->nrefs == 0) {
		rc = ust_blob_remove_internal_xattr(ip->blob, BFS_XA_REFS);
		return rc == -ENOENT ? 0 : rc;
	}
	for (i = 0; i < ip->nrefs; i++) {
		len += 10u + ip->refs[i].len;
	}
	buf = malloc(len);
	if (buf == NULL) {
		return -ENOMEM;
	}
	len = 0;
	for (i = 0; i < ip->nrefs; i++) {
		memcpy(buf + len, &ip->refs[i].parent, 8);
		memcpy(buf + len + 8, &ip->refs[i].len, 2);
		memcpy(buf + len + 10, ip->refs[i].name, ip->refs[i].len);
		len += 10u + ip->refs[i].len;
	}
	rc = ust_blob_set_internal_xattr(ip->blob, BFS_XA_REFS, buf, len);
	free(buf);
	return rc;
}

/* ---- loading ------------------------------------------------------------------------------ */

static void iget_wake(struct ust_blobfs *fs, struct bfs_inode *ip, int rc)
{
	struct bfs_waiter *w = ip->waiters, *next;

	ip->waiters = NULL;
	ip->loading = false;
	if (rc != 0) {
		bfs_icache_remove(fs, ip);
		if (ip->blob != NULL) {
			ust_blob_close(ip->blob, bfs_ignore_cb, NULL);
		}
		ip->blob = NULL;
	}
	for (; w != NULL; w = next) {
		next = w->next;
		*w->out = rc == 0 ? ip : NULL;
		w->req->rc = rc;
		w->cb(w->req);
		free(w);
	}
	if (rc != 0) {
		bfs_inode_free(ip);
	}
}

static void iget_opened(void *arg, struct ust_blob *blob, int rc)
{
	struct bfs_inode *ip = arg;
	struct ust_blobfs *fs = ip->fs;

	if (rc == 0) {
		ip->blob = blob;
		rc = bfs_inode_parse(ip);
	}
	if (rc == 0 && S_ISDIR(ip->mode)) {
		bfs_dir_load(ip); /* then bfs_iget_dir_loaded() */
		return;
	}
	iget_wake(fs, ip, rc);
}

void bfs_iget_dir_loaded(struct bfs_inode *ip, int rc)
{
	iget_wake(ip->fs, ip, rc);
}

/* A cache entry for inode ino, not yet in the cache: adopted or loaded by the caller. */
static struct bfs_inode *inode_new(struct ust_blobfs *fs, uint64_t ino)
{
	struct bfs_inode *ip = calloc(1, sizeof(*ip));

	if (ip != NULL) {
		ip->fs = fs;
		ip->ino = ino;
	}
	return ip;
}

/*
 * The inode of a blob just created and still open: cached now from what
 * the create wrote, without the read a bfs_iget would make. 1: adopted
 * (the cache holds the blob); 0: not (a directory, which bfs_iget loads
 * with its blocks, an inode already cached, or a parse failure), and the
 * caller still holds the blob.
 */
int bfs_inode_adopt(struct ust_blobfs *fs, struct ust_blob *blob)
{
	uint64_t ino = ust_blob_get_id(blob);
	struct bfs_inode *ip;

	if (bfs_icache_find(fs, ino) != NULL) {
		return 0;
	}
	ip = inode_new(fs, ino);
	if (ip == NULL) {
		return 0;
	}
	ip->blob = blob;
	if (bfs_inode_parse(ip) != 0 || S_ISDIR(ip->mode)) {
		ip->blob = NULL;
		bfs_inode_free(ip);
		return 0;
	}
	icache_insert(fs, ip);
	return 1;
}

int bfs_iget(struct ust_blobfs *fs, uint64_t ino, struct bfs_inode **out, void (*cb)(struct bfs_req *),
	     struct bfs_req *req)
{
	struct bfs_inode *ip = bfs_icache_find(fs, ino);
	struct bfs_waiter *w;

	if (ip != NULL && !ip->loading) {
		*out = ip;
		return 1;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		req->rc = -ENOMEM;
		*out = NULL;
		return 1;
	}
	w->out = out;
	w->cb = cb;
	w->req = req;
	if (ip != NULL) {
		w->next = ip->waiters;
		ip->waiters = w;
		return 0;
	}
	ip = inode_new(fs, ino);
	if (ip == NULL) {
		free(w);
		req->rc = -ENOMEM;
		*out = NULL;
		return 1;
	}
	ip->loading = true;
	ip->waiters = w;
	icache_insert(fs, ip);
	ust_bs_open_blob(fs->bs, ino, iget_opened, ip);
	return 0;
}

/* ---- attributes ----------------------------------------------------------------------------- */

uint32_t bfs_nlink(const struct bfs_inode *ip)
{
	if (ip->deleted) {
		return 0;
	}
	if (S_ISDIR(ip->mode)) {
		/* removed while open (its one ref is gone): no links, as Linux reports it */
		if (ip->nrefs == 0 && ip != ip->fs->root) {
			return 0;
		}
		return 2 + ip->nsubdirs;
	}
	return ip->nrefs;
}

void bfs_fill_attr(struct ust_blobfs *fs, const struct bfs_inode *ip, struct ust_blobfs_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = bfs_ino_out(fs, ip->ino);
	a->mode = ip->mode;
	a->nlink = bfs_nlink(ip);
	a->uid = ip->uid;
	a->gid = ip->gid;
	a->rdev = ip->rdev;
	a->size = ip->size;
	if (ip->blob != NULL) {
		a->blocks = ust_blob_get_num_allocated_clusters(ip->blob) * (fs->cluster / 512);
	}
	a->blksize = (uint32_t)fs->cluster;
	a->atime = ip->atime;
	a->mtime = ip->mtime;
	a->ctime = ip->ctime;
	a->btime = ip->btime;
}

/* ---- refs (hard links) --------------------------------------------------------------------------- */

int bfs_ref_find(const struct bfs_inode *ip, uint64_t parent, const char *name)
{
	uint32_t i;

	for (i = 0; i < ip->nrefs; i++) {
		if (ip->refs[i].parent == parent && strcmp(ip->refs[i].name, name) == 0) {
			return (int)i;
		}
	}
	return -1;
}

int bfs_ref_add(struct bfs_inode *ip, uint64_t parent, const char *name)
{
	struct bfs_ref *r;
	size_t len = strlen(name);

	if (bfs_ref_find(ip, parent, name) >= 0) {
		return 0;
	}
	r = realloc(ip->refs, (ip->nrefs + 1) * sizeof(*r));
	if (r == NULL) {
		return -ENOMEM;
	}
	ip->refs = r;
	r = &ip->refs[ip->nrefs++];
	memset(r, 0, sizeof(*r));
	r->parent = parent;
	r->len = (uint16_t)len;
	memcpy(r->name, name, len);
	return 0;
}

void bfs_ref_del(struct bfs_inode *ip, uint64_t parent, const char *name)
{
	int i = bfs_ref_find(ip, parent, name);

	if (i < 0) {
		return;
	}
	memmove(&ip->refs[i], &ip->refs[i + 1], (ip->nrefs - (uint32_t)i - 1) * sizeof(*ip->refs));
	ip->nrefs--;
}
