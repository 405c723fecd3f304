/*
 * Damaging a blobfs image (blobfs_damage.c): the blobstore of a copy, held
 * while blobfs is not mounted on it, and the directory block layout of
 * docs/blobfs-format.md 4.2. Each call fails the test if the store refuses.
 */
#ifndef USTOR_BLOBFS_DAMAGE_H
#define USTOR_BLOBFS_DAMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ustor/blob.h"

#include "../../../blobfs/blobfs_internal.h"

/* One directory entry, and one block decoded (header as on disk). */
struct bfd_ent {
	uint64_t cookie, ino;
	uint8_t type, len;
	char name[256];
};

struct bfd_blk {
	struct bfs_disk_dblock h;
	struct bfd_ent e[160];
	int n;
};

extern struct ust_blob_store *bfd_bs; /* the store held by bfd_store_open() */
extern struct ust_io_channel *bfd_ch;

/* Hold the store on bdev (bstype "ustor"), and drop it again. */
void bfd_store_open(const char *bdev);
void bfd_store_close(void);
/* bfd_store_close() without assertions, if held (test tear-down). */
void bfd_store_drop(void);

struct ust_blob *bfd_blob_open(uint64_t id);
/* Sync the blob's metadata and close it. */
void bfd_blob_commit(struct ust_blob *b);
/* A copy of internal xattr name of b into buf (room: cap); its length, or -1 when absent. */
int bfd_xa_get(struct ust_blob *b, const char *name, uint8_t *buf, size_t cap);
void bfd_xa_set(struct ust_blob *b, const char *name, const void *v, size_t len);
/* Read or write directory block index of b (blk: DMA memory, 4096 bytes). */
void bfd_block_io(struct ust_blob *b, bool write, uint8_t *blk, uint32_t index);
/* The directory blocks b's size holds. */
uint32_t bfd_blocks(struct ust_blob *b);

/* A name's first cookie in a directory of that hash seed (4.2). */
uint64_t bfd_name_cookie(uint64_t seed, const char *name, size_t len);
/* Set a block image's checksum as a writer would. */
void bfd_reseal(uint8_t *img);
void bfd_blk_decode(const uint8_t *img, struct bfd_blk *b);
/* The entries (sorted by cookie if sort) and header of b into a sealed image. */
void bfd_blk_encode(struct bfd_blk *b, uint8_t *img, bool sort);

#endif
