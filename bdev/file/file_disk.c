/*
 * File bdevs, the part shared by the aio and uring backends: opening the
 * file (O_DIRECT when the filesystem allows it, buffered with one warning
 * otherwise), choosing and checking the block size, registering the bdev,
 * rescanning its size, and turning each bdev I/O into a struct file_io that
 * the backend submits.
 *
 * Guarantees: a read or write completes with success only once every byte
 * was transferred; a short transfer is resubmitted for the rest, and a
 * transfer that makes no progress fails with -EIO. A full kernel queue
 * completes the I/O with NOMEM so the core retries it. Nothing here blocks
 * a reactor: flush, unmap and write_zeroes are asynchronous kernel
 * operations or run on the offload worker.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "ustor/log.h"

#include "file_internal.h"

#define FILE_DEFAULT_BLOCK_SIZE 512
#define FILE_MAX_BLOCK_SIZE (64 * 1024)

static TAILQ_HEAD(, file_disk) g_file_disks = TAILQ_HEAD_INITIALIZER(g_file_disks);
static int g_common_refs;

int file_get_ctx_size(void)
{
	return (int)sizeof(struct file_io);
}

int file_module_common_init(void)
{
	int rc;

	if (g_common_refs++ > 0)
		return 0;
	rc = file_offload_start();
	if (rc != 0)
		g_common_refs--;
	return rc;
}

void file_module_common_fini(void)
{
	if (g_common_refs == 0 || --g_common_refs > 0)
		return;
	file_offload_stop();
}

/* ---- per-I/O data path -------------------------------------------------- */

struct ust_bdev_io *file_io_to_bdev_io(struct file_io *fio)
{
	return ust_bdev_io_from_ctx(fio);
}

void file_io_build_slice(struct file_io *fio)
{
	struct ust_bdev_io *io = file_io_to_bdev_io(fio);
	uint64_t skip = fio->done;
	uint64_t left = fio->len - fio->done;
	int i, n = 0;

	for (i = 0; i < io->iovcnt && left > 0 && n < FILE_IO_SLICE_IOVS; i++) {
		uint64_t iov_len = io->iovs[i].iov_len;
		uint64_t take;

		if (skip >= iov_len) {
			skip -= iov_len;
			continue;
		}
		take = iov_len - skip;
		if (take > left)
			take = left;
		fio->slice[n].iov_base = (uint8_t *)io->iovs[i].iov_base + skip;
		fio->slice[n].iov_len = take;
		n++;
		left -= take;
		skip = 0;
	}
	fio->slice_cnt = n;
}

uint64_t file_io_slice_len(const struct file_io *fio)
{
	uint64_t len = 0;
	int i;

	for (i = 0; i < fio->slice_cnt; i++)
		len += fio->slice[i].iov_len;
	return len;
}

static void file_io_complete_rc(struct file_io *fio, int rc)
{
	struct ust_bdev_io *io = file_io_to_bdev_io(fio);

	if (rc == -EAGAIN)
		ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_NOMEM);
	else
		ust_bdev_io_complete_errno(io, rc);
}

static bool file_io_is_transfer(const struct file_io *fio)
{
	return fio->op == FILE_OP_READ || fio->op == FILE_OP_WRITE;
}

/*
 * A read or write of a file in memory is a copy to or from the page cache
 * that never waits for a device, so it runs here, on the reactor, like a
 * malloc bdev's memcpy. Through io_uring the kernel punts such writes to an
 * io-wq worker, and the hand-off and the completion wake-up cost more than
 * the copy (file_check_memory_fs). The core defers the completion callback.
 * Large writes into a mapped file are the exception: the copy engine
 * (file_copy.c) stores them on a CPU no reactor polls.
 */
static int64_t file_io_copy_inline(struct file_io *fio)
{
	ssize_t n;

	if (fio->disk->map != NULL) {
		n = file_map_copy(fio);
		if (n != 0)
			return n;
	}
	do {
		if (fio->op == FILE_OP_READ)
			n = preadv(fio->disk->fd, fio->slice, fio->slice_cnt,
				   (off_t)(fio->offset + fio->done));
		else
			n = pwritev(fio->disk->fd, fio->slice, fio->slice_cnt,
				    (off_t)(fio->offset + fio->done));
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static void file_io_submit(struct file_io *fio)
{
	struct ust_bdev_io *io = file_io_to_bdev_io(fio);
	struct file_disk_channel *dch = ust_io_channel_get_ctx(ust_bdev_io_get_io_channel(io));
	int rc;

	if (fio->disk->in_memory && file_io_is_transfer(fio)) {
		if (fio->op == FILE_OP_WRITE && fio->disk->map != NULL && file_copy_submit(fio)) {
			return;
		}
		file_io_done(fio, file_io_copy_inline(fio));
		return;
	}
	rc = fio->disk->backend->submit(ust_io_channel_get_ctx(dch->group_ch), fio);
	if (rc != 0)
		file_io_complete_rc(fio, rc);
}

void file_io_copied(struct file_io *fio, int64_t res)
{
	atomic_fetch_add_explicit(&fio->disk->copy_engine_writes, 1, memory_order_relaxed);
	if (res == 0) {
		res = file_io_copy_inline(fio); /* not through the mapping: pwritev, here */
	}
	file_io_done(fio, res);
}

void file_io_done(struct file_io *fio, int64_t res)
{
	if (res < 0) {
		file_io_complete_rc(fio, (int)res);
		return;
	}
	if (!file_io_is_transfer(fio)) {
		if (fio->op == FILE_OP_UNMAP || fio->op == FILE_OP_WRITE_ZEROES)
			file_map_forget(fio->disk, fio->offset, fio->len);
		file_io_complete_rc(fio, 0);
		return;
	}
	if (res == 0 || (uint64_t)res > fio->len - fio->done) {
		/* No progress (the file shrank under us) or a nonsensical count. */
		UST_ERRLOG("%s: %" PRIu64 "-byte %s at %" PRIu64 " stopped after %" PRIu64
			   " bytes (kernel returned %" PRId64 ")\n", fio->disk->filename, fio->len,
			   fio->op == FILE_OP_READ ? "read" : "write", fio->offset, fio->done, res);
		file_io_complete_rc(fio, -EIO);
		return;
	}
	fio->done += (uint64_t)res;
	if (fio->done == fio->len) {
		file_io_complete_rc(fio, 0);
		return;
	}
	/* Short transfer: send the rest. */
	file_io_build_slice(fio);
	file_io_submit(fio);
}

static void file_disk_submit_request(struct ust_io_channel *ch, struct ust_bdev_io *io)
{
	struct file_disk *disk = io->bdev->ctxt;
	struct file_io *fio = ust_bdev_io_get_driver_ctx(io);
	uint32_t bs = disk->bdev.blocklen;

	memset(fio, 0, offsetof(struct file_io, slice));
	fio->disk = disk;
	fio->offset = io->offset_blocks * bs;
	fio->len = io->num_blocks * bs;
	switch (io->type) {
	case UST_BDEV_IO_TYPE_READ:
		fio->op = FILE_OP_READ;
		file_io_build_slice(fio);
		break;
	case UST_BDEV_IO_TYPE_WRITE:
		fio->op = FILE_OP_WRITE;
		file_io_build_slice(fio);
		break;
	case UST_BDEV_IO_TYPE_FLUSH:
		if (disk->in_memory) {
			ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_SUCCESS);
			return;
		}
		fio->op = FILE_OP_FLUSH;
		break;
	case UST_BDEV_IO_TYPE_UNMAP:
		fio->op = FILE_OP_UNMAP;
		file_map_forget(disk, fio->offset, fio->len);
		break;
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
		fio->op = FILE_OP_WRITE_ZEROES;
		file_map_forget(disk, fio->offset, fio->len);
		break;
	case UST_BDEV_IO_TYPE_RESET:
		/* The core drained this bdev's I/O before the reset reached us. */
		ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_SUCCESS);
		return;
	default:
		ust_bdev_io_complete_errno(io, -ENOTSUP);
		return;
	}
	file_io_submit(fio);
}

/* ---- bdev callbacks ----------------------------------------------------- */

static bool file_blockdev_can_discard(const struct file_disk *disk)
{
	struct stat st;
	char path[96];
	unsigned long long max = 0;
	FILE *f;

	if (fstat(disk->fd, &st) != 0)
		return false;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/queue/discard_max_bytes",
		 major(st.st_rdev), minor(st.st_rdev));
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	if (fscanf(f, "%llu", &max) != 1)
		max = 0;
	fclose(f);
	return max > 0;
}

static bool file_disk_io_type_supported(void *ctxt, enum ust_bdev_io_type type)
{
	struct file_disk *disk = ctxt;

	switch (type) {
	case UST_BDEV_IO_TYPE_READ:
	case UST_BDEV_IO_TYPE_FLUSH:
	case UST_BDEV_IO_TYPE_RESET:
		return true;
	case UST_BDEV_IO_TYPE_WRITE:
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
		return !disk->readonly;
	case UST_BDEV_IO_TYPE_UNMAP:
		if (disk->readonly)
			return false;
		return !disk->is_blockdev || file_blockdev_can_discard(disk);
	default:
		return false;
	}
}

static int file_disk_channel_create(void *io_device, void *ctx_buf)
{
	struct file_disk *disk = io_device;
	struct file_disk_channel *dch = ctx_buf;

	dch->group_ch = ust_get_io_channel(disk->backend->group_device);
	return dch->group_ch != NULL ? 0 : -ENOMEM;
}

static void file_disk_channel_destroy(void *io_device, void *ctx_buf)
{
	struct file_disk_channel *dch = ctx_buf;

	ust_put_io_channel(dch->group_ch);
}

static struct ust_io_channel *file_disk_get_io_channel(void *ctxt)
{
	return ust_get_io_channel(ctxt);
}

static void file_disk_free(struct file_disk *disk)
{
	file_map_close(disk);
	if (disk->fd >= 0)
		close(disk->fd);
	free(disk->filename);
	free(disk->bdev.name);
	free(disk);
}

static void file_disk_device_gone(void *io_device)
{
	struct file_disk *disk = io_device;

	ust_bdev_destruct_done(&disk->bdev, 0);
	file_disk_free(disk);
}

static int file_disk_destruct(void *ctxt)
{
	struct file_disk *disk = ctxt;

	TAILQ_REMOVE(&g_file_disks, disk, link);
	ust_io_device_unregister(disk, file_disk_device_gone);
	return 1;
}

static int file_disk_dump_info_json(void *ctxt, json_t *driver_specific)
{
	struct file_disk *disk = ctxt;
	json_t *o = json_object();

	if (o == NULL)
		return -ENOMEM;
	json_object_set_new(o, "filename", json_string(disk->filename));
	json_object_set_new(o, "block_size_override", json_boolean(disk->user_block_size));
	json_object_set_new(o, "readonly", json_boolean(disk->readonly));
	json_object_set_new(o, "direct_io", json_boolean(disk->direct));
	json_object_set_new(o, "mapped", json_boolean(disk->map != NULL));
	if (disk->map != NULL) {
		json_object_set_new(o, "copy_engine_writes",
				    json_integer((json_int_t)atomic_load(&disk->copy_engine_writes)));
	}
	json_object_set_new(driver_specific, disk->backend->name, o);
	return 0;
}

static void file_disk_write_config_json(struct ust_bdev *bdev, json_t *calls)
{
	struct file_disk *disk = bdev->ctxt;
	char uuid[UST_UUID_STRING_LEN];
	char method[32];
	json_t *params = json_object();

	snprintf(method, sizeof(method), "bdev_%s_create", disk->backend->name);
	json_object_set_new(params, "name", json_string(ust_bdev_get_name(bdev)));
	json_object_set_new(params, "filename", json_string(disk->filename));
	json_object_set_new(params, "block_size", json_integer(bdev->blocklen));
	if (disk->readonly)
		json_object_set_new(params, "readonly", json_true());
	if (ust_uuid_fmt(uuid, sizeof(uuid), ust_bdev_get_uuid(bdev)) == 0)
		json_object_set_new(params, "uuid", json_string(uuid));
	json_array_append_new(calls, json_pack("{s:s, s:o}", "method", method, "params", params));
}

static const struct ust_bdev_fn_table g_file_fn_table = {
	.destruct = file_disk_destruct,
	.submit_request = file_disk_submit_request,
	.io_type_supported = file_disk_io_type_supported,
	.get_io_channel = file_disk_get_io_channel,
	.dump_info_json = file_disk_dump_info_json,
	.write_config_json = file_disk_write_config_json,
	.lend = file_map_lend,
};

/* ---- opening and geometry ----------------------------------------------- */

/*
 * A file in memory (tmpfs, ramfs) has no stable storage behind it: the
 * kernel's fsync there does nothing but costs an io-wq round trip per flush
 * through io_uring. Such files complete flushes at once, and their reads and
 * writes are copied inline (file_io_copy_inline); tmpfs files through a
 * mapping (file_map.c).
 */
static void file_check_memory_fs(struct file_disk *disk)
{
	struct statfs sfs;
	int rc;

	if (disk->is_blockdev || fstatfs(disk->fd, &sfs) != 0)
		return;
	if (sfs.f_type != TMPFS_MAGIC && sfs.f_type != RAMFS_MAGIC)
		return;
	disk->in_memory = true;
	if (sfs.f_type == TMPFS_MAGIC) {
		rc = file_map_open(disk, disk->bdev.blockcnt * disk->bdev.blocklen);
		if (rc != 0)
			UST_NOTICELOG("%s: cannot map the file (%s); using preadv/pwritev\n",
				      disk->filename, strerror(-rc));
	}
	UST_NOTICELOG("%s: on a memory filesystem; flushes complete at once, data is copied inline%s\n",
		      disk->filename, disk->map != NULL ? " through a mapping" : "");
}

static int file_open(struct file_disk *disk)
{
	int flags = disk->readonly ? O_RDONLY : O_RDWR;

	disk->fd = open(disk->filename, flags | O_DIRECT | O_CLOEXEC);
	if (disk->fd >= 0) {
		disk->direct = true;
		return 0;
	}
	if (errno != EINVAL) {
		int rc = -errno;

		UST_ERRLOG("cannot open %s: %s\n", disk->filename, strerror(errno));
		return rc;
	}
	disk->fd = open(disk->filename, flags | O_CLOEXEC);
	if (disk->fd < 0) {
		int rc = -errno;

		UST_ERRLOG("cannot open %s: %s\n", disk->filename, strerror(errno));
		return rc;
	}
	UST_WARNLOG("%s: the filesystem refuses O_DIRECT; using buffered I/O (the page cache "
		    "holds written data until a flush)\n", disk->filename);
	disk->direct = false;
	return 0;
}

/* Smallest offset alignment O_DIRECT accepts on a regular file; 0 if unknown. */
static uint32_t file_dio_offset_align(int fd)
{
#ifdef STATX_DIOALIGN
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) != 0)
		return stx.stx_dio_offset_align;
#endif
	return 0;
}

static int file_get_size(struct file_disk *disk, uint64_t *size)
{
	struct stat st;

	if (fstat(disk->fd, &st) != 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		uint64_t bytes;

		if (ioctl(disk->fd, BLKGETSIZE64, &bytes) != 0)
			return -errno;
		*size = bytes;
		return 0;
	}
	*size = (uint64_t)st.st_size;
	return 0;
}

static bool is_pow2(uint32_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

static int file_choose_block_size(struct file_disk *disk, uint32_t requested, uint32_t *bs)
{
	uint32_t logical = FILE_DEFAULT_BLOCK_SIZE;
	struct stat st;

	if (fstat(disk->fd, &st) != 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		int lbs = 0, pbs = 0;

		disk->is_blockdev = true;
		if (ioctl(disk->fd, BLKSSZGET, &lbs) != 0 || lbs <= 0)
			return -EIO;
		if (ioctl(disk->fd, BLKPBSZGET, &pbs) != 0)
			pbs = 0;
		logical = (uint32_t)lbs;
		if (requested == 0 && pbs > lbs)
			UST_NOTICELOG("%s: physical block size %d > logical %d; block_size %d may "
				      "perform better\n", disk->filename, pbs, lbs, pbs);
	} else if (!S_ISREG(st.st_mode)) {
		UST_ERRLOG("%s is neither a regular file nor a block device\n", disk->filename);
		return -EINVAL;
	}
	if (requested == 0) {
		*bs = logical;
	} else {
		if (!is_pow2(requested) || requested < 512 || requested > FILE_MAX_BLOCK_SIZE) {
			UST_ERRLOG("%s: block_size %u must be a power of two from 512 to %u\n",
				   disk->filename, requested, FILE_MAX_BLOCK_SIZE);
			return -EINVAL;
		}
		if (disk->is_blockdev && requested < logical) {
			UST_ERRLOG("%s: block_size %u is below the device's logical block size %u\n",
				   disk->filename, requested, logical);
			return -EINVAL;
		}
		*bs = requested;
	}
	if (disk->direct && !disk->is_blockdev) {
		uint32_t need = file_dio_offset_align(disk->fd);

		if (need > *bs) {
			/* O_DIRECT would refuse every I/O: fall back instead. */
			UST_WARNLOG("%s: block size %u is below the O_DIRECT alignment %u of its "
				    "filesystem; using buffered I/O\n", disk->filename, *bs, need);
			if (fcntl(disk->fd, F_SETFL, fcntl(disk->fd, F_GETFL) & ~O_DIRECT) != 0)
				return -errno;
			disk->direct = false;
		}
	}
	return 0;
}

static int file_disk_geometry(struct file_disk *disk, uint32_t requested_bs)
{
	uint64_t size;
	uint32_t bs;
	int rc;

	rc = file_choose_block_size(disk, requested_bs, &bs);
	if (rc != 0)
		return rc;
	rc = file_get_size(disk, &size);
	if (rc != 0)
		return rc;
	if (size == 0 || size % bs != 0) {
		UST_ERRLOG("%s: size %" PRIu64 " bytes is not a non-zero multiple of the block "
			   "size %u\n", disk->filename, size, bs);
		return -EINVAL;
	}
	disk->bdev.blocklen = bs;
	disk->bdev.blockcnt = size / bs;
	/* The core bounces misaligned buffers: O_DIRECT needs aligned memory. */
	disk->bdev.buf_align = disk->direct ? bs : 1;
	return 0;
}

/* ---- create, delete, rescan --------------------------------------------- */

static struct file_disk *file_disk_find(const struct file_backend *backend, const char *name)
{
	struct file_disk *disk;

	TAILQ_FOREACH(disk, &g_file_disks, link) {
		if (disk->backend == backend && strcmp(disk->bdev.name, name) == 0)
			return disk;
	}
	return NULL;
}

int file_disk_create(const struct file_backend *backend, const struct ust_bdev_file_opts *opts,
		     struct ust_bdev **bdevp)
{
	struct file_disk *disk;
	int rc;

	if (opts == NULL || opts->name == NULL || opts->name[0] == '\0' || opts->filename == NULL ||
	    opts->filename[0] == '\0')
		return -EINVAL;
	if (ust_bdev_get_by_name(opts->name) != NULL) {
		UST_ERRLOG("bdev %s already exists\n", opts->name);
		return -EEXIST;
	}
	rc = backend->probe();
	if (rc != 0) {
		UST_ERRLOG("cannot create %s bdev %s: the kernel refuses %s queues here (%s)\n",
			   backend->name, opts->name, backend->name, strerror(-rc));
		return rc;
	}
	disk = calloc(1, sizeof(*disk));
	if (disk == NULL)
		return -ENOMEM;
	disk->fd = -1;
	disk->backend = backend;
	disk->readonly = opts->readonly;
	disk->user_block_size = opts->block_size != 0;
	disk->filename = strdup(opts->filename);
	disk->bdev.name = strdup(opts->name);
	if (disk->filename == NULL || disk->bdev.name == NULL) {
		file_disk_free(disk);
		return -ENOMEM;
	}
	rc = file_open(disk);
	if (rc == 0)
		rc = file_disk_geometry(disk, opts->block_size);
	if (rc != 0) {
		file_disk_free(disk);
		return rc;
	}
	file_check_memory_fs(disk);
	disk->bdev.product_name = strcmp(backend->name, "aio") == 0 ? "AIO disk" : "URING disk";
	/*
	 * Buffered, a completed write may sit in the page cache until fsync: a
	 * volatile cache. In memory, the page cache is the medium itself; a
	 * flush adds nothing, and saying so lets the layers above skip theirs.
	 */
	disk->bdev.write_cache = !disk->direct && !disk->in_memory;
	disk->bdev.uuid = opts->uuid;
	disk->bdev.ctxt = disk;
	disk->bdev.module = backend->module;
	disk->bdev.fn_table = &g_file_fn_table;

	ust_io_device_register(disk, file_disk_channel_create, file_disk_channel_destroy,
			       sizeof(struct file_disk_channel), opts->name);
	TAILQ_INSERT_TAIL(&g_file_disks, disk, link);
	rc = ust_bdev_register(&disk->bdev);
	if (rc != 0) {
		TAILQ_REMOVE(&g_file_disks, disk, link);
		ust_io_device_unregister(disk, NULL);
		/* No channel exists yet, so nothing refers to disk any more. */
		file_disk_free(disk);
		return rc;
	}
	if (bdevp != NULL)
		*bdevp = &disk->bdev;
	return 0;
}

int file_disk_delete(const struct file_backend *backend, const char *name,
		     void (*cb)(void *ctx, int rc), void *ctx)
{
	if (name == NULL)
		return -EINVAL;
	return ust_bdev_unregister_by_name(name, backend->module, cb, ctx);
}

int file_disk_rescan(const struct file_backend *backend, const char *name)
{
	struct file_disk *disk;
	uint64_t size, blockcnt, old;
	int rc;

	if (name == NULL)
		return -EINVAL;
	disk = file_disk_find(backend, name);
	if (disk == NULL)
		return -ENODEV;
	rc = file_get_size(disk, &size);
	if (rc != 0)
		return rc;
	blockcnt = size / disk->bdev.blocklen;
	if (size % disk->bdev.blocklen != 0)
		UST_WARNLOG("%s: size %" PRIu64 " is not a multiple of the block size %u; the "
			    "last %" PRIu64 " bytes are not used\n", disk->filename, size,
			    disk->bdev.blocklen, size % disk->bdev.blocklen);
	if (blockcnt == 0) {
		UST_ERRLOG("%s: file is now smaller than one block\n", disk->filename);
		return -EINVAL;
	}
	if (blockcnt == ust_bdev_get_num_blocks(&disk->bdev))
		return 0;
	old = ust_bdev_get_num_blocks(&disk->bdev);
	rc = ust_bdev_notify_blockcnt_change(&disk->bdev, blockcnt);
	if (rc == 0)
		UST_NOTICELOG("bdev %s: %" PRIu64 " -> %" PRIu64 " blocks\n", name, old, blockcnt);
	else
		UST_ERRLOG("bdev %s: cannot change from %" PRIu64 " to %" PRIu64 " blocks: %s\n",
			   name, old, blockcnt, strerror(-rc));
	return rc;
}
