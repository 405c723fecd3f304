/*
 * blobfs_corrupt_ut's private header: the reference tree and the damages
 * (blobfs_corrupt_ut_damage.c), shared with the checks and the tests
 * (blobfs_corrupt_ut.c). See blobfs_corrupt_ut.c for what the test does.
 */
#ifndef BLOBFS_CORRUPT_UT_H
#define BLOBFS_CORRUPT_UT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ustor/blob.h"
#include "ustor/blobfs.h"

/* ---- PRNG: xorshift64, seeded by the test (BFT_CORRUPT_SEED) ---- */
extern uint64_t g_rng;
uint32_t rnd_below(uint32_t n);

/* ---- the reference tree ---- */

enum obj_kind { O_DIR, O_FILE, O_LINK, O_FIFO };

#define MAX_OBJS 96
#define BIG_N 40
#define MAX_PATH 600

struct obj {
	char path[MAX_PATH]; /* from the root, '/'-separated; "" is the root */
	enum obj_kind kind;
	uint64_t ino;
	uint64_t parent;
	uint32_t size;  /* files: bytes of pattern seed */
	uint32_t seed;
	char target[320]; /* symlinks */
	bool xattrs;      /* f_a, d1: user xattrs below */
};

extern struct obj g_objs[MAX_OBJS];
extern int g_nobj;
extern uint64_t g_root_id;  /* the root's blob id (reported as inode 1) */
extern uint64_t g_super_id; /* the super blob's id */
extern uint64_t g_free_ref; /* free clusters of the undamaged copy, mounted */
extern uint8_t *g_base;     /* the undamaged raw image */
extern char g_desc[1024];   /* the damage of this iteration */
extern int g_iter;
/* the value of user.k2 on the reference's xattr objects */
static const char XA2[] = "a value of one hundred bytes, give or take, to see that it comes back whole..........!";

struct obj *obj_by_ino(uint64_t ino);
/* Name k of the directory split over several blocks. */
void big_name(char *buf, int k);
int set_xattr(uint64_t ino, const char *name, const void *v, size_t len);
/* The reference tree, built on the mounted file system; *orphan: its open unlinked file. */
void build_reference(struct ust_blobfs_file **orphan);

/* ---- the damaged copy (on M1, its blobstore opened by fresh_copy) ---- */

uint64_t real_id(uint64_t ino);
struct ust_blob *blob_open(uint64_t ino);

/* What one damage may reach: all (super blob, intents, orphans), or one inode or directory. */
extern bool g_global;
extern uint64_t g_damaged;

/* A random object of a kind (-1: any). */
struct obj *pick_obj(int kind);
/* what < 0: a damage chosen at random; o or d NULL: an object chosen at random */
void damage_dblock(bool targeted, int what, struct obj *d);
void damage_inode(int what, struct obj *o);
void damage_refs(int what, struct obj *o);
void damage_intent(int what);
void damage_orphans(int what);
void damage_orphan_inode(int what);
/* A fresh copy of the reference image on M1, its blobstore loaded for damaging. */
void fresh_copy(void);
int read_orphans(uint64_t *v, size_t max);
/* A fresh copy of the reference image on M1, damaged once at random. */
void damage_copy(void);

#endif
