/*
 * Virtual bdevs on one base: the configuration registry, build, channels,
 * base events and ordered teardown that passthru, error, delay and crashsim
 * (and any module of that shape) share. The contract is in
 * include/ustor/bdev_module.h ("virtual bdevs on one base").
 *
 * Guarantees: a configuration is kept until deleted and builds its bdev
 * whenever a base of that name is present; a vbdev holds its base open and
 * claimed for as long as the vbdev exists, and releases both only after its
 * last channel (and with it its last base channel) is gone; the base
 * descriptor is closed on the thread that opened it; a removal (delete or
 * hot remove) runs once, after the module's quiesce hook.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/bdev_module.h"
#include "ustor/log.h"
#include "ustor/thread.h"

/* The lists live in the module's static class: set them up on first use. */
static void vbdev_class_ready(struct ust_vbdev_class *cls)
{
	if (cls->internal.lists_ready)
		return;
	TAILQ_INIT(&cls->internal.configs);
	TAILQ_INIT(&cls->internal.vbdevs);
	cls->internal.lists_ready = true;
}

/* ---- I/O path ----------------------------------------------------------- */

int ust_vbdev_forward(struct ust_vbdev *vb, struct ust_io_channel *base_ch,
		      struct ust_bdev_io *io, ust_bdev_io_cb cb)
{
	struct ust_bdev_desc *d = vb->base_desc;
	uint64_t off = io->offset_blocks, n = io->num_blocks;

	switch (io->type) {
	case UST_BDEV_IO_TYPE_READ:
		return ust_bdev_readv_blocks(d, base_ch, io->iovs, io->iovcnt, off, n, cb, io);
	case UST_BDEV_IO_TYPE_WRITE:
		return ust_bdev_writev_blocks(d, base_ch, io->iovs, io->iovcnt, off, n, cb, io);
	case UST_BDEV_IO_TYPE_UNMAP:
		return ust_bdev_unmap_blocks(d, base_ch, off, n, cb, io);
	case UST_BDEV_IO_TYPE_FLUSH:
		return ust_bdev_flush_blocks(d, base_ch, off, n, cb, io);
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
		return ust_bdev_write_zeroes_blocks(d, base_ch, off, n, cb, io);
	case UST_BDEV_IO_TYPE_RESET:
		return ust_bdev_reset(d, base_ch, cb, io);
	case UST_BDEV_IO_TYPE_COMPARE:
		return ust_bdev_comparev_blocks(d, base_ch, io->iovs, io->iovcnt, off, n, cb, io);
	case UST_BDEV_IO_TYPE_COMPARE_AND_WRITE:
		return ust_bdev_comparev_and_writev_blocks(d, base_ch, io->iovs, io->iovcnt,
							   io->fused_iovs, io->fused_iovcnt, off,
							   n, cb, io);
	default:
		return -ENOTSUP;
	}
}

void ust_vbdev_io_submit_failed(struct ust_bdev_io *io, int rc)
{
	if (rc == -ENOMEM)
		ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_NOMEM);
	else
		ust_bdev_io_complete_errno(io, rc);
}

bool ust_vbdev_io_type_supported(void *ctxt, enum ust_bdev_io_type type)
{
	return ust_bdev_io_type_supported(ust_vbdev_get_base(ctxt), type);
}

/* ---- channels ----------------------------------------------------------- */

static int vbdev_channel_create(void *io_device, void *ctx_buf)
{
	struct ust_vbdev *vb = io_device;
	struct ust_vbdev_channel *vch = ctx_buf;
	int rc;

	/* Runs on the thread that wants a channel: take that thread's base channel. */
	vch->base_ch = ust_bdev_get_io_channel(vb->base_desc);
	if (vch->base_ch == NULL)
		return -ENOMEM;
	if (vb->cls->channel_create == NULL)
		return 0;
	rc = vb->cls->channel_create(vb, ctx_buf);
	if (rc != 0)
		ust_put_io_channel(vch->base_ch);
	return rc;
}

static void vbdev_channel_destroy(void *io_device, void *ctx_buf)
{
	struct ust_vbdev *vb = io_device;
	struct ust_vbdev_channel *vch = ctx_buf;

	if (vb->cls->channel_destroy != NULL)
		vb->cls->channel_destroy(vb, ctx_buf);
	ust_put_io_channel(vch->base_ch);
}

struct ust_io_channel *ust_vbdev_get_io_channel(void *ctxt)
{
	return ust_get_io_channel(ctxt);
}

/* ---- teardown ----------------------------------------------------------- */

static void vbdev_close_base_desc(void *arg)
{
	ust_bdev_close(arg);
}

/* Every channel of ours is gone: let go of the base, tell the core, free. */
static void vbdev_device_gone(void *io_device)
{
	struct ust_vbdev *vb = io_device;

	ust_bdev_module_release_bdev(ust_vbdev_get_base(vb));
	if (vb->desc_thread == ust_get_thread())
		ust_bdev_close(vb->base_desc);
	else
		ust_thread_send_msg(vb->desc_thread, vbdev_close_base_desc, vb->base_desc);
	ust_bdev_destruct_done(&vb->bdev, 0);
	if (vb->cls->fini != NULL)
		vb->cls->fini(vb);
	free(vb->bdev.name);
	free(vb);
}

void ust_vbdev_teardown(struct ust_vbdev *vb)
{
	ust_io_device_unregister(vb, vbdev_device_gone);
}

int ust_vbdev_destruct(void *ctxt)
{
	struct ust_vbdev *vb = ctxt;

	TAILQ_REMOVE(&vb->cls->internal.vbdevs, vb, link);
	if (vb->cls->destruct == NULL || !vb->cls->destruct(vb))
		ust_vbdev_teardown(vb);
	return 1; /* finished by vbdev_device_gone() */
}

void ust_vbdev_quiesce_done(struct ust_vbdev *vb)
{
	ust_bdev_unregister(&vb->bdev, vb->remove_cb, vb->remove_ctx);
}

/* Delete or hot remove: once only, after the module released what it holds. */
static void vbdev_remove(struct ust_vbdev *vb, ust_bdev_unregister_cb cb, void *ctx)
{
	if (vb->removing) {
		if (cb != NULL)
			cb(ctx, -EBUSY);
		return;
	}
	vb->removing = true;
	vb->remove_cb = cb;
	vb->remove_ctx = ctx;
	if (vb->cls->quiesce != NULL)
		vb->cls->quiesce(vb);
	else
		ust_vbdev_quiesce_done(vb);
}

/* Events of the base, on the thread that opened it. */
static void vbdev_base_event(enum ust_bdev_event_type type, struct ust_bdev *base, void *ctx)
{
	struct ust_vbdev *vb = ctx;

	switch (type) {
	case UST_BDEV_EVENT_REMOVE:
		vbdev_remove(vb, NULL, NULL);
		break;
	case UST_BDEV_EVENT_RESIZE:
		if (vb->cls->fixed_size)
			UST_WARNLOG("%s %s: base %s resized; keeping %" PRIu64 " blocks\n",
				    vb->cls->module->name, vb->bdev.name, ust_bdev_get_name(base),
				    vb->bdev.blockcnt);
		else if (ust_bdev_notify_blockcnt_change(&vb->bdev,
							 ust_bdev_get_num_blocks(base)) != 0)
			UST_ERRLOG("%s %s: cannot follow the resize of %s\n",
				   vb->cls->module->name, vb->bdev.name, ust_bdev_get_name(base));
		break;
	}
}

/* ---- build -------------------------------------------------------------- */

static struct ust_vbdev *vbdev_find_by_config(struct ust_vbdev_class *cls,
					      const struct ust_vbdev_config *c)
{
	struct ust_vbdev *vb;

	TAILQ_FOREACH(vb, &cls->internal.vbdevs, link) {
		if (vb->config == c)
			return vb;
	}
	return NULL;
}

/* Same geometry as the base; alignment and splitting are the base core's business. */
static void vbdev_fill(struct ust_vbdev *vb, struct ust_bdev *base)
{
	struct ust_vbdev_class *cls = vb->cls;

	vb->bdev.product_name = (char *)cls->product_name;
	vb->bdev.blocklen = ust_bdev_get_block_size(base);
	vb->bdev.blockcnt = ust_bdev_get_num_blocks(base);
	vb->bdev.write_cache = ust_bdev_has_write_cache(base);
	vb->bdev.md_len = ust_bdev_get_md_size(base);
	vb->bdev.md_interleave = ust_bdev_is_md_interleaved(base);
	vb->bdev.dif_type = ust_bdev_get_dif_type(base);
	vb->bdev.uuid = vb->config->uuid;
	vb->bdev.ctxt = vb;
	vb->bdev.module = cls->module;
	vb->bdev.fn_table = cls->fn_table;
}

/* Build and register the vbdev of config c on base (which exists). */
static int vbdev_build(struct ust_vbdev_class *cls, struct ust_vbdev_config *c,
		       struct ust_bdev *base)
{
	struct ust_vbdev *vb;
	int rc;

	rc = cls->check_base != NULL ? cls->check_base(base) : 0;
	if (rc != 0)
		goto err_log;
	vb = calloc(1, cls->vbdev_size);
	if (vb == NULL) {
		rc = -ENOMEM;
		goto err_log;
	}
	vb->cls = cls;
	vb->config = c;
	vb->desc_thread = ust_get_thread();
	rc = ust_bdev_open_ext(ust_bdev_get_name(base), false, vbdev_base_event, vb,
			       &vb->base_desc);
	if (rc != 0)
		goto err_free;
	rc = ust_bdev_module_claim_bdev(base, vb->base_desc, cls->module);
	if (rc != 0)
		goto err_close;
	vb->bdev.name = strdup(c->name);
	if (vb->bdev.name == NULL) {
		rc = -ENOMEM;
		goto err_release;
	}
	vbdev_fill(vb, base);
	rc = cls->init != NULL ? cls->init(vb, base) : 0;
	if (rc != 0)
		goto err_name;

	ust_io_device_register(vb, vbdev_channel_create, vbdev_channel_destroy, cls->channel_size,
			       c->name);
	TAILQ_INSERT_TAIL(&cls->internal.vbdevs, vb, link);
	rc = ust_bdev_register(&vb->bdev);
	if (rc == 0)
		return 0;
	TAILQ_REMOVE(&cls->internal.vbdevs, vb, link);
	ust_io_device_unregister(vb, NULL);
	if (cls->fini != NULL)
		cls->fini(vb);
err_name:
	free(vb->bdev.name);
err_release:
	ust_bdev_module_release_bdev(base);
err_close:
	ust_bdev_close(vb->base_desc);
err_free:
	free(vb);
err_log:
	UST_ERRLOG("%s %s on %s: %s\n", cls->module->name, c->name, c->base_name, strerror(-rc));
	return rc;
}

/* ---- configuration ------------------------------------------------------ */

static struct ust_vbdev_config *vbdev_config_find(struct ust_vbdev_class *cls, const char *name)
{
	struct ust_vbdev_config *c;

	TAILQ_FOREACH(c, &cls->internal.configs, link) {
		if (strcmp(c->name, name) == 0)
			return c;
	}
	return NULL;
}

static void vbdev_config_free(struct ust_vbdev_config *c)
{
	TAILQ_REMOVE(&c->cls->internal.configs, c, link);
	free((char *)c->name);
	free((char *)c->base_name);
	free(c);
}

int ust_vbdev_create(struct ust_vbdev_class *cls, const struct ust_vbdev_config *tmpl)
{
	struct ust_vbdev_config *c;
	struct ust_bdev *base;
	int rc;

	if (cls == NULL || tmpl == NULL || tmpl->name == NULL || tmpl->name[0] == '\0' ||
	    tmpl->base_name == NULL || tmpl->base_name[0] == '\0' ||
	    strcmp(tmpl->name, tmpl->base_name) == 0)
		return -EINVAL;
	vbdev_class_ready(cls);
	if (vbdev_config_find(cls, tmpl->name) != NULL || ust_bdev_get_by_name(tmpl->name) != NULL)
		return -EEXIST;
	c = malloc(cls->config_size);
	if (c == NULL)
		return -ENOMEM;
	memcpy(c, tmpl, cls->config_size);
	c->cls = cls;
	c->name = strdup(tmpl->name);
	c->base_name = strdup(tmpl->base_name);
	TAILQ_INSERT_TAIL(&cls->internal.configs, c, link);
	if (c->name == NULL || c->base_name == NULL) {
		vbdev_config_free(c);
		return -ENOMEM;
	}
	base = ust_bdev_get_by_name(c->base_name);
	if (base == NULL)
		return 0; /* built by examine_config when the base arrives */
	rc = vbdev_build(cls, c, base);
	if (rc != 0)
		vbdev_config_free(c);
	return rc;
}

int ust_vbdev_delete(struct ust_vbdev_class *cls, const char *name, ust_bdev_unregister_cb cb,
		     void *ctx)
{
	struct ust_vbdev_config *c;
	struct ust_vbdev *vb;

	if (cls == NULL || name == NULL)
		return -EINVAL;
	vbdev_class_ready(cls);
	c = vbdev_config_find(cls, name);
	if (c == NULL)
		return -ENODEV;
	vb = vbdev_find_by_config(cls, c);
	vbdev_config_free(c);
	if (vb == NULL) {
		if (cb != NULL)
			cb(ctx, 0);
		return 0;
	}
	vb->config = NULL;
	vbdev_remove(vb, cb, ctx);
	return 0;
}

struct ust_vbdev *ust_vbdev_find(struct ust_vbdev_class *cls, const char *name)
{
	struct ust_vbdev *vb;

	if (cls == NULL || name == NULL)
		return NULL;
	vbdev_class_ready(cls);
	TAILQ_FOREACH(vb, &cls->internal.vbdevs, link) {
		if (strcmp(vb->bdev.name, name) == 0)
			return vb;
	}
	return NULL;
}

void ust_vbdev_examine_config(struct ust_vbdev_class *cls, struct ust_bdev *bdev)
{
	struct ust_vbdev_config *c;
	const char *name = ust_bdev_get_name(bdev);

	vbdev_class_ready(cls);
	TAILQ_FOREACH(c, &cls->internal.configs, link) {
		if (strcmp(c->base_name, name) == 0 && vbdev_find_by_config(cls, c) == NULL)
			vbdev_build(cls, c, bdev); /* a failure is logged; the config stays */
	}
	ust_bdev_module_examine_done(cls->module);
}

void ust_vbdev_class_fini(struct ust_vbdev_class *cls)
{
	struct ust_vbdev_config *c;

	vbdev_class_ready(cls);
	while ((c = TAILQ_FIRST(&cls->internal.configs)) != NULL)
		vbdev_config_free(c);
}
