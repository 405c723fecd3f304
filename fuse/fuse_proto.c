/*
 * The FUSE protocol beyond libfuse 3.14 (Debian's): request fields it
 * drops and answer fields it cannot set, read and written on the raw
 * messages by every transport (fuse_internal.h: fmnt_note_request before
 * a request is processed, fmnt_patch_reply before an answer is written).
 * Both run on the mount's thread, around the one request being handled.
 *
 * What it carries:
 *  - FOPEN_PARALLEL_DIRECT_WRITES in OPEN and CREATE answers
 *    (m->reply_open_flags), so O_DIRECT writes to one file do not queue
 *    behind each other's submission.
 *  - FUSE_HANDLE_KILLPRIV_V2 (protocol 7.33) in the INIT answer, when the
 *    kernel offers it, and the KILL_SUIDGID flags that then come with
 *    WRITE (write_flags), OPEN (open_flags) and SETATTR (valid). Without
 *    it the kernel asks for security.capability (a GETXATTR round trip)
 *    before every write(2) to learn whether privileges must be dropped,
 *    holding the inode lock across it, so writes to a file were as slow
 *    as a round trip and could not overlap. With it the kernel marks the
 *    mount SB_NOSEC, stops asking once a file is known to carry no
 *    set-user-ID or set-group-ID bit, and leaves the dropping to us: it
 *    sets KILL_SUIDGID on a write, truncate or open(O_TRUNC) by a caller
 *    without CAP_FSETID, and on any chown of a non-directory (which
 *    blobfs drops anyway). blobfs applies it (ust_blobfs_ctx.kill_suidgid);
 *    blobfs keeps no security.* attributes, so there are no capabilities
 *    to drop.
 *
 * A message too short for the field it should carry is left alone: the
 * kernel never sends one, and libfuse rejects it on its own terms.
 */
#include <linux/fuse.h>
#include <stddef.h>
#include <string.h>

#include "fuse_internal.h"

/* linux/fuse.h's enum fuse_opcode, by value */
static const char *const g_opcode_name[UST_FUSE_OPCODES] = {
	[FUSE_LOOKUP] = "LOOKUP", [FUSE_FORGET] = "FORGET", [FUSE_GETATTR] = "GETATTR",
	[FUSE_SETATTR] = "SETATTR", [FUSE_READLINK] = "READLINK", [FUSE_SYMLINK] = "SYMLINK",
	[FUSE_MKNOD] = "MKNOD", [FUSE_MKDIR] = "MKDIR", [FUSE_UNLINK] = "UNLINK",
	[FUSE_RMDIR] = "RMDIR", [FUSE_RENAME] = "RENAME", [FUSE_LINK] = "LINK",
	[FUSE_OPEN] = "OPEN", [FUSE_READ] = "READ", [FUSE_WRITE] = "WRITE",
	[FUSE_STATFS] = "STATFS", [FUSE_RELEASE] = "RELEASE", [FUSE_FSYNC] = "FSYNC",
	[FUSE_SETXATTR] = "SETXATTR", [FUSE_GETXATTR] = "GETXATTR",
	[FUSE_LISTXATTR] = "LISTXATTR", [FUSE_REMOVEXATTR] = "REMOVEXATTR",
	[FUSE_FLUSH] = "FLUSH", [FUSE_INIT] = "INIT", [FUSE_OPENDIR] = "OPENDIR",
	[FUSE_READDIR] = "READDIR", [FUSE_RELEASEDIR] = "RELEASEDIR",
	[FUSE_FSYNCDIR] = "FSYNCDIR", [FUSE_GETLK] = "GETLK", [FUSE_SETLK] = "SETLK",
	[FUSE_SETLKW] = "SETLKW", [FUSE_ACCESS] = "ACCESS", [FUSE_CREATE] = "CREATE",
	[FUSE_INTERRUPT] = "INTERRUPT", [FUSE_BMAP] = "BMAP", [FUSE_DESTROY] = "DESTROY",
	[FUSE_IOCTL] = "IOCTL", [FUSE_POLL] = "POLL", [FUSE_NOTIFY_REPLY] = "NOTIFY_REPLY",
	[FUSE_BATCH_FORGET] = "BATCH_FORGET", [FUSE_FALLOCATE] = "FALLOCATE",
	[FUSE_READDIRPLUS] = "READDIRPLUS", [FUSE_RENAME2] = "RENAME2", [FUSE_LSEEK] = "LSEEK",
	[FUSE_COPY_FILE_RANGE] = "COPY_FILE_RANGE", [FUSE_SETUPMAPPING] = "SETUPMAPPING",
	[FUSE_REMOVEMAPPING] = "REMOVEMAPPING", [FUSE_SYNCFS] = "SYNCFS",
	[FUSE_TMPFILE] = "TMPFILE",
};

const char *ust_fuse_opcode_name(uint32_t opcode)
{
	return opcode < UST_FUSE_OPCODES ? g_opcode_name[opcode] : NULL;
}

/* The fixed argument after the header, or NULL if the request is too short to hold it. */
static const void *req_arg(const void *req, size_t len, size_t arg_size)
{
	if (len < sizeof(struct fuse_in_header) + arg_size) {
		return NULL;
	}
	return (const char *)req + sizeof(struct fuse_in_header);
}

/* The 32-bit field at offset off of the request's fixed argument; 0 if absent. */
static uint32_t req_u32(const void *req, size_t len, size_t arg_size, size_t off)
{
	const char *arg = req_arg(req, len, arg_size);
	uint32_t v = 0;

	if (arg != NULL) {
		memcpy(&v, arg + off, sizeof(v));
	}
	return v;
}

void fmnt_note_request(struct fmnt *m, const void *req, size_t len)
{
	struct fuse_in_header h;
	uint32_t kill = 0;

	/*
	 * Every request, also those answered without blobfs (FORGET,
	 * security.* xattrs), by kind; their sum is the mount's request count.
	 */
	m->req_kill_suidgid = false;
	m->req_unique = 0;
	if (len < sizeof(h)) {
		atomic_fetch_add_explicit(&m->requests_by_op[0], 1, memory_order_relaxed);
		return;
	}
	memcpy(&h, req, sizeof(h));
	m->req_unique = h.unique;
	atomic_fetch_add_explicit(&m->requests_by_op[h.opcode < UST_FUSE_OPCODES ? h.opcode : 0], 1,
				  memory_order_relaxed);
	switch (h.opcode) {
	case FUSE_INIT:
		m->kernel_init_flags = req_u32(req, len, offsetof(struct fuse_init_in, flags) + 4,
					       offsetof(struct fuse_init_in, flags));
		return;
	case FUSE_WRITE:
		kill = req_u32(req, len, sizeof(struct fuse_write_in),
			       offsetof(struct fuse_write_in, write_flags)) &
		       FUSE_WRITE_KILL_SUIDGID;
		break;
	case FUSE_OPEN:
		kill = req_u32(req, len, sizeof(struct fuse_open_in),
			       offsetof(struct fuse_open_in, open_flags)) &
		       FUSE_OPEN_KILL_SUIDGID;
		break;
	case FUSE_SETATTR:
		kill = req_u32(req, len, sizeof(struct fuse_setattr_in),
			       offsetof(struct fuse_setattr_in, valid)) &
		       FATTR_KILL_SUIDGID;
		break;
	default:
		return;
	}
	m->req_kill_suidgid = kill != 0;
}

/*
 * An answer with one argument is [header, argument]: libfuse's
 * send_reply_ok. The argument, or NULL when the answer is an error or
 * shorter than need.
 */
static void *reply_arg(struct iovec *iov, int count, size_t need)
{
	const struct fuse_out_header *oh = iov[0].iov_base;

	if (count != 2 || iov[0].iov_len != sizeof(*oh) || oh->error != 0 || iov[1].iov_len < need) {
		return NULL;
	}
	return iov[1].iov_base;
}

void fmnt_patch_reply(struct fmnt *m, struct iovec *iov, int count)
{
	char *arg;

	if (m->reply_open_flags != 0) {
		/* OPEN's answer is fuse_open_out; CREATE's ends with one. */
		arg = reply_arg(iov, count, sizeof(struct fuse_open_out));
		if (arg != NULL) {
			struct fuse_open_out *oo =
				(struct fuse_open_out *)(arg + iov[1].iov_len - sizeof(*oo));

			oo->open_flags |= m->reply_open_flags;
		}
	}
	if (m->reply_init_flags != 0) {
		arg = reply_arg(iov, count, offsetof(struct fuse_init_out, flags) + 4);
		if (arg != NULL) {
			uint32_t flags;

			memcpy(&flags, arg + offsetof(struct fuse_init_out, flags), sizeof(flags));
			flags |= m->reply_init_flags;
			memcpy(arg + offsetof(struct fuse_init_out, flags), &flags, sizeof(flags));
		}
		m->reply_init_flags = 0;
	}
}
