/*
 * Error-injection bdevs (module "error"): C API behind bdev_error_create,
 * bdev_error_delete and bdev_error_inject_error. Control path: call on the
 * app thread.
 */
#ifndef USTOR_BDEV_ERROR_H
#define USTOR_BDEV_ERROR_H

#include <stdint.h>

#include "ustor/bdev_module.h"

enum ust_bdev_error_type {
	UST_BDEV_ERROR_NONE = 0,
	UST_BDEV_ERROR_FAILURE,      /* complete with -EIO */
	UST_BDEV_ERROR_PENDING,      /* hold: complete only when cleared or deleted (-ECANCELED) */
	UST_BDEV_ERROR_CORRUPT_DATA, /* XOR one byte of the read data or the written data */
	UST_BDEV_ERROR_NOMEM,        /* complete with NOMEM: the core retries */
};

/* io_type values beyond enum ust_bdev_io_type. */
#define UST_BDEV_ERROR_IO_CLEAR UST_BDEV_IO_TYPE_INVALID /* drop every injection */
#define UST_BDEV_ERROR_IO_ALL UST_BDEV_NUM_IO_TYPES     /* every I/O type */

/*
 * Remember "EE_<base_name> over base_name" and build it now if the base
 * exists, or when it is registered. uuid may be NULL. -EINVAL, -EEXIST,
 * -EPERM (base claimed), -ENOMEM.
 */
int ust_bdev_error_create(const char *base_name, const struct ust_uuid *uuid);
/* Forget and unregister (pending I/O is aborted first). -ENODEV unknown name. */
int ust_bdev_error_delete(const char *name, void (*cb)(void *ctx, int rc), void *ctx);

/*
 * The next num I/Os of io_type (or of every type) get error_type. For
 * CORRUPT_DATA the byte at corrupt_offset of the I/O's data (modulo its
 * length) is XORed with corrupt_value (non-zero), in read data after the
 * base read it and in a copy of write data before the base writes it; only
 * read and write I/O can be corrupted. io_type UST_BDEV_ERROR_IO_CLEAR
 * drops every injection and completes held (pending) I/O with -ECANCELED.
 * -ENODEV no such bdev, -EINVAL bad arguments.
 */
int ust_bdev_error_inject(const char *name, uint32_t io_type, enum ust_bdev_error_type error_type,
			  uint32_t num, uint64_t corrupt_offset, uint8_t corrupt_value);
/* Injections of io_type not yet used; -ENODEV, -EINVAL. */
int64_t ust_bdev_error_remaining(const char *name, enum ust_bdev_io_type io_type);

#endif
