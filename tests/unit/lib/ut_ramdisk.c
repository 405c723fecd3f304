/*
 * The unit tests' RAM disk bdev (ut_ramdisk.h). One io_device for every
 * disk; its channels hold nothing, since each I/O completes inside submit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ustor/thread.h"
#include "ut_ramdisk.h"
#include "ut_threads.h"

static int g_ramdisk_device;

static int ramdisk_ch_create(void *dev, void *ctx)
{
	return 0;
}

static void ramdisk_ch_destroy(void *dev, void *ctx)
{
}

static int ramdisk_init(void)
{
	ust_io_device_register(&g_ramdisk_device, ramdisk_ch_create, ramdisk_ch_destroy, 0,
			       "ut_ramdisk");
	return 0;
}

static void ramdisk_fini(void)
{
	ust_io_device_unregister(&g_ramdisk_device, NULL);
}

static struct ust_bdev_module g_ramdisk_module = {
	.name = "ut_ramdisk",
	.module_init = ramdisk_init,
	.module_fini = ramdisk_fini,
};
UST_BDEV_MODULE_REGISTER(ut_ramdisk, &g_ramdisk_module)

static void ramdisk_submit(struct ust_io_channel *ch, struct ust_bdev_io *io)
{
	struct ut_ramdisk *d = io->bdev->ctxt;
	uint8_t *p = d->data + io->offset_blocks * UT_RAMDISK_BLOCK;
	size_t left = io->num_blocks * UT_RAMDISK_BLOCK, n;
	int i;

	switch (io->type) {
	case UST_BDEV_IO_TYPE_READ:
	case UST_BDEV_IO_TYPE_WRITE:
		if (io->type == UST_BDEV_IO_TYPE_READ)
			d->reads++;
		for (i = 0; i < io->iovcnt && left > 0; i++) {
			n = io->iovs[i].iov_len < left ? io->iovs[i].iov_len : left;
			if (io->type == UST_BDEV_IO_TYPE_READ)
				memcpy(io->iovs[i].iov_base, p, n);
			else
				memcpy(p, io->iovs[i].iov_base, n);
			p += n;
			left -= n;
		}
		break;
	case UST_BDEV_IO_TYPE_UNMAP:
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
		memset(p, 0, left);
		break;
	default:
		break;
	}
	ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_SUCCESS);
}

static bool ramdisk_supported(void *ctxt, enum ust_bdev_io_type type)
{
	return type == UST_BDEV_IO_TYPE_READ || type == UST_BDEV_IO_TYPE_WRITE ||
	       type == UST_BDEV_IO_TYPE_UNMAP || type == UST_BDEV_IO_TYPE_WRITE_ZEROES ||
	       type == UST_BDEV_IO_TYPE_FLUSH;
}

static struct ust_io_channel *ramdisk_get_io_channel(void *ctxt)
{
	return ust_get_io_channel(&g_ramdisk_device);
}

static int ramdisk_destruct(void *ctxt)
{
	struct ut_ramdisk *d = ctxt;

	d->registered = false;
	return 0;
}

static const struct ust_bdev_fn_table g_ramdisk_fn_table = {
	.destruct = ramdisk_destruct,
	.submit_request = ramdisk_submit,
	.io_type_supported = ramdisk_supported,
	.get_io_channel = ramdisk_get_io_channel,
};

void ut_ramdisk_register(struct ut_ramdisk *d, const char *name)
{
	assert_non_null(d->data);
	memset(&d->bdev, 0, sizeof(d->bdev));
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->bdev.name = d->name;
	d->bdev.product_name = "unit test RAM disk";
	d->bdev.blocklen = UT_RAMDISK_BLOCK;
	d->bdev.blockcnt = d->bytes / UT_RAMDISK_BLOCK;
	d->bdev.ctxt = d;
	d->bdev.module = &g_ramdisk_module;
	d->bdev.fn_table = &g_ramdisk_fn_table;
	assert_int_equal(ust_bdev_register(&d->bdev), 0);
	d->registered = true;
	ut_threads_poll();
}

void ut_ramdisk_unregister(struct ut_ramdisk *d)
{
	ust_bdev_unregister(&d->bdev, NULL, NULL);
	ut_threads_poll();
	assert_false(d->registered);
}
