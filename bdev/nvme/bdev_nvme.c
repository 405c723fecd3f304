/*
 * The NVMe bdev module: controllers attached by name through ustor's NVMe
 * driver, one bdev NAMEn<nsid> per active namespace.
 *
 * Threads: everything about a controller (attach, detach, reset, namespace
 * changes, its admin poller) happens on the app thread. The controller is
 * the io_device: a thread's channel holds that thread's own I/O qpair and
 * an active poller reaping it, so I/O takes no lock. After a controller
 * reset each qpair recreates its queues inside its own poll.
 *
 * Lifetimes: a controller lives until bdev_nvme_detach_controller (or
 * module shutdown, surprise removal, or ctrlr_loss_timeout_sec running out):
 * its bdevs are unregistered first, then the io_device (waiting for every
 * channel, and so every qpair, to be gone), then the controller is shut
 * down (CC.SHN) from the admin poller.
 *
 * Reconnect: a failed controller (not a removed one) is reset by the admin
 * poller, at once and then after each failed attempt with a doubling
 * delay, while its bdevs stay registered. The driver's reset builds a new
 * association on fabrics; each thread's qpair reconnects itself at its next
 * poll once the controller is ready. I/O threads read only the fixed
 * ctrlr_loss_timeout_sec and the fast_fail flag to choose between holding
 * and failing new I/O.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/env.h"
#include "ustor/log.h"
#include "ustor/thread.h"

#include "bdev_nvme.h"

#define ADMIN_POLL_US 1000
/* The reconnect delay doubles after each failed attempt, up to 1 << this (8 x). */
#define RECONNECT_BACKOFF_MAX_SHIFT 3

static struct bdev_nvme_reconnect_opts g_default_reconnect;

struct nvme_bdev_ctrlr;

struct nvme_bdev {
	struct ust_bdev disk;
	struct nvme_bdev_ctrlr *nctrlr;
	struct ust_nvme_ns *ns;
	uint32_t nsid;
	bool removing;
	TAILQ_ENTRY(nvme_bdev) link;
};

enum nvme_bdev_ctrlr_state {
	NCTRLR_ATTACHING,
	NCTRLR_ATTACHED,
	NCTRLR_DETACHING,    /* bdevs and channels going away */
	NCTRLR_SHUTTING_DOWN, /* controller shutdown polled */
};

struct reset_waiter {
	bdev_nvme_done_cb cb;
	void *ctx;
	TAILQ_ENTRY(reset_waiter) link;
};

enum reconnect_state {
	RECONNECT_IDLE,     /* ready, or failed with no reconnecting asked for */
	RECONNECT_WAIT,     /* failed; the next attempt at next_attempt_tick */
	RECONNECT_RESETTING, /* an attempt (a driver reset) is running */
};

struct nvme_bdev_ctrlr {
	char *name;
	struct ust_nvme_ctrlr *ctrlr;
	struct ust_nvme_transport_id trid;
	char *hostnqn;
	enum nvme_bdev_ctrlr_state state;
	struct ust_poller *admin_poller;
	TAILQ_HEAD(, nvme_bdev) bdevs;
	uint32_t num_bdevs; /* registered and not yet destructed */
	bool ns_changed;
	bool removed;
	bdev_nvme_attach_cb attach_cb;
	void *attach_ctx;
	TAILQ_HEAD(, reset_waiter) reset_waiters;
	bool resetting;
	bdev_nvme_done_cb detach_cb;
	void *detach_ctx;
	struct bdev_nvme_reconnect_opts ropts;
	enum reconnect_state rstate;
	uint64_t loss_tick;         /* when the failure was noticed */
	uint64_t next_attempt_tick;
	uint32_t attempts;          /* failed attempts since the loss */
	bool fast_fail;             /* read by I/O threads: fail held I/O */
	TAILQ_ENTRY(nvme_bdev_ctrlr) link;
};

struct nvme_io_channel {
	struct ust_nvme_qpair *qpair;
	struct ust_poller *poller;
};

static TAILQ_HEAD(, nvme_bdev_ctrlr) g_nctrlrs = TAILQ_HEAD_INITIALIZER(g_nctrlrs);
static bool g_fini_started;

static int nvme_module_init(void);
static void nvme_module_fini(void);
static void nvme_config_json(json_t *calls);

static struct ust_bdev_module g_nvme_module = {
	.name = "nvme",
	.module_init = nvme_module_init,
	.module_fini = nvme_module_fini,
	.config_json = nvme_config_json,
	.async_fini = true,
};

UST_BDEV_MODULE_REGISTER(nvme, &g_nvme_module)

static struct nvme_bdev_ctrlr *find_ctrlr(const char *name)
{
	struct nvme_bdev_ctrlr *n;

	TAILQ_FOREACH(n, &g_nctrlrs, link) {
		if (strcmp(n->name, name) == 0)
			return n;
	}
	return NULL;
}

static void ctrlr_free(struct nvme_bdev_ctrlr *n)
{
	free(n->name);
	free(n->hostnqn);
	free(n);
}

/* ---- channels -------------------------------------------------------------- */

static int channel_poll(void *arg)
{
	struct nvme_io_channel *ch = arg;
	int32_t n = ust_nvme_qpair_process_completions(ch->qpair, 0);

	return n > 0 ? UST_POLLER_BUSY : UST_POLLER_IDLE;
}

static int channel_create(void *io_device, void *ctx)
{
	struct nvme_bdev_ctrlr *n = io_device;
	struct nvme_io_channel *ch = ctx;
	struct ust_nvme_io_qpair_opts qopts;

	/* A reactor does not wait for a fabrics connection: the qpair finishes it in its poller. */
	ust_nvme_io_qpair_opts_init(n->ctrlr, &qopts);
	qopts.async_connect = true;
	ch->qpair = ust_nvme_ctrlr_alloc_io_qpair(n->ctrlr, &qopts);
	if (ch->qpair == NULL) {
		UST_ERRLOG("bdev_nvme %s: cannot allocate an I/O queue pair: %s\n", n->name,
			   strerror(errno));
		return -errno;
	}
	ch->poller = ust_poller_register(channel_poll, ch, 0, "nvme_qpair");
	if (ch->poller == NULL) {
		ust_nvme_ctrlr_free_io_qpair(ch->qpair);
		return -ENOMEM;
	}
	return 0;
}

static void channel_destroy(void *io_device, void *ctx)
{
	struct nvme_io_channel *ch = ctx;

	ust_poller_unregister(&ch->poller);
	ust_nvme_ctrlr_free_io_qpair(ch->qpair);
	ch->qpair = NULL;
}

/* ---- I/O --------------------------------------------------------------------- */

static void io_done(void *arg, const struct ust_nvme_cpl *cpl)
{
	/*
	 * Aborted because the controller was reset under it (the driver sets
	 * DNR only when the controller failed): the core requeues it, and it
	 * runs again once the qpair has reconnected.
	 */
	if (ust_nvme_cpl_sct(cpl) == UST_NVME_SCT_GENERIC &&
	    ust_nvme_cpl_sc(cpl) == UST_NVME_SC_ABORTED_SQ_DELETION && !ust_nvme_cpl_dnr(cpl)) {
		ust_bdev_io_complete(arg, UST_BDEV_IO_STATUS_NOMEM);
		return;
	}
	ust_bdev_io_complete_errno(arg, ust_nvme_cpl_to_errno(cpl));
}

/*
 * On a failed controller: hold new I/O when a reconnect is coming (from the
 * failure on, even before the admin poller noticed it), unless the fast-fail
 * time passed or the controller is going away (both set fast_fail).
 */
static bool hold_while_reconnecting(const struct nvme_bdev_ctrlr *n)
{
	/* A ready controller (a qpair that failed alone) has nothing to wait for. */
	return n->ropts.ctrlr_loss_timeout_sec != 0 &&
	       !__atomic_load_n(&n->fast_fail, __ATOMIC_ACQUIRE) &&
	       ust_nvme_ctrlr_get_init_status(n->ctrlr) != 0;
}

static void submit_result(struct ust_bdev_io *io, int rc)
{
	struct nvme_bdev *nb = io->bdev->ctxt;

	if (rc == 0)
		return;
	/*
	 * Queue full, the controller resetting, or failed with a reconnect to
	 * come: the core requeues it (retrying it from its NOMEM poller).
	 */
	if (rc == -ENOMEM || (rc == -EAGAIN && !__atomic_load_n(&nb->nctrlr->fast_fail,
								 __ATOMIC_ACQUIRE)) ||
	    (rc == -ENXIO && hold_while_reconnecting(nb->nctrlr)))
		ust_bdev_io_complete(io, UST_BDEV_IO_STATUS_NOMEM);
	else
		ust_bdev_io_complete_errno(io, rc == -EAGAIN ? -ENXIO : rc);
}

static void read_with_buf(struct ust_io_channel *ch, struct ust_bdev_io *io, bool success)
{
	struct nvme_bdev *nb = io->bdev->ctxt;
	struct nvme_io_channel *nch = ust_io_channel_get_ctx(ch);

	if (!success) {
		ust_bdev_io_complete_errno(io, -ENOMEM);
		return;
	}
	submit_result(io, ust_nvme_ns_cmd_readv(nb->ns, nch->qpair, io->iovs, io->iovcnt,
						io->offset_blocks, (uint32_t)io->num_blocks,
						io_done, io, 0));
}

struct io_reset_ctx {
	struct ust_bdev_io *io;
	struct ust_thread *thread;
	int rc;
};

static void io_reset_complete(void *arg)
{
	struct io_reset_ctx *r = arg;

	ust_bdev_io_complete_errno(r->io, r->rc);
	free(r);
}

static void io_reset_done(void *arg, int rc)
{
	struct io_reset_ctx *r = arg;

	r->rc = rc;
	if (ust_thread_send_msg(r->thread, io_reset_complete, r) != 0)
		UST_ERRLOG("bdev_nvme: cannot complete a reset on its thread\n");
}

static void io_reset_start(void *arg)
{
	struct io_reset_ctx *r = arg;
	struct nvme_bdev *nb = r->io->bdev->ctxt;
	int rc = bdev_nvme_reset_controller(nb->nctrlr->name, io_reset_done, r);

	if (rc != 0)
		io_reset_done(r, rc);
}

/* Resets run on the app thread, which owns the controller. */
static void submit_reset(struct ust_io_channel *ch, struct ust_bdev_io *io)
{
	struct io_reset_ctx *r = calloc(1, sizeof(*r));

	if (r == NULL) {
		ust_bdev_io_complete_errno(io, -ENOMEM);
		return;
	}
	r->io = io;
	r->thread = ust_io_channel_get_thread(ch);
	if (ust_thread_send_msg(ust_thread_get_app_thread(), io_reset_start, r) != 0) {
		free(r);
		ust_bdev_io_complete_errno(io, -ENOMEM);
	}
}

static void nvme_bdev_submit(struct ust_io_channel *ch, struct ust_bdev_io *io)
{
	struct nvme_bdev *nb = io->bdev->ctxt;
	struct nvme_io_channel *nch = ust_io_channel_get_ctx(ch);
	struct ust_nvme_dsm_range range;
	uint32_t n = (uint32_t)io->num_blocks;
	int rc;

	switch (io->type) {
	case UST_BDEV_IO_TYPE_READ:
		ust_bdev_io_get_buf(io, read_with_buf, io->num_blocks * nb->disk.blocklen);
		return;
	case UST_BDEV_IO_TYPE_WRITE:
		rc = ust_nvme_ns_cmd_writev(nb->ns, nch->qpair, io->iovs, io->iovcnt,
					    io->offset_blocks, n, io_done, io, 0);
		break;
	case UST_BDEV_IO_TYPE_COMPARE:
		rc = ust_nvme_ns_cmd_comparev(nb->ns, nch->qpair, io->iovs, io->iovcnt,
					      io->offset_blocks, n, io_done, io, 0);
		break;
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
		rc = ust_nvme_ns_cmd_write_zeroes(nb->ns, nch->qpair, io->offset_blocks, n, io_done,
						  io, 0);
		break;
	case UST_BDEV_IO_TYPE_UNMAP:
		memset(&range, 0, sizeof(range));
		range.starting_lba = io->offset_blocks;
		range.length = n;
		rc = ust_nvme_ns_cmd_dataset_management(nb->ns, nch->qpair,
							UST_NVME_DSM_ATTR_DEALLOCATE, &range, 1,
							io_done, io);
		break;
	case UST_BDEV_IO_TYPE_FLUSH:
		rc = ust_nvme_ns_cmd_flush(nb->ns, nch->qpair, io_done, io);
		break;
	case UST_BDEV_IO_TYPE_RESET:
		submit_reset(ch, io);
		return;
	default:
		rc = -ENOTSUP;
		break;
	}
	submit_result(io, rc);
}

static bool nvme_bdev_io_type_supported(void *ctxt, enum ust_bdev_io_type type)
{
	struct nvme_bdev *nb = ctxt;
	const struct ust_nvme_ctrlr_data *cd = ust_nvme_ctrlr_get_data(nb->nctrlr->ctrlr);

	switch (type) {
	case UST_BDEV_IO_TYPE_READ:
	case UST_BDEV_IO_TYPE_WRITE:
	case UST_BDEV_IO_TYPE_FLUSH:
	case UST_BDEV_IO_TYPE_RESET:
		return true;
	case UST_BDEV_IO_TYPE_COMPARE:
		return cd->oncs & UST_NVME_ONCS_COMPARE;
	case UST_BDEV_IO_TYPE_UNMAP:
		return cd->oncs & UST_NVME_ONCS_DSM;
	case UST_BDEV_IO_TYPE_WRITE_ZEROES:
		return cd->oncs & UST_NVME_ONCS_WRITE_ZEROES;
	default:
		return false;
	}
}

static struct ust_io_channel *nvme_bdev_get_io_channel(void *ctxt)
{
	struct nvme_bdev *nb = ctxt;

	return ust_get_io_channel(nb->nctrlr);
}

static json_t *trid_json(const struct ust_nvme_transport_id *trid)
{
	json_t *o = json_object();
	const char *adrfam = ust_nvme_adrfam_str(trid->adrfam);

	json_object_set_new(o, "trtype", json_string(ust_nvme_transport_type_str(trid->trtype)));
	if (adrfam != NULL)
		json_object_set_new(o, "adrfam", json_string(adrfam));
	json_object_set_new(o, "traddr", json_string(trid->traddr));
	if (trid->trsvcid[0] != '\0')
		json_object_set_new(o, "trsvcid", json_string(trid->trsvcid));
	if (trid->subnqn[0] != '\0')
		json_object_set_new(o, "subnqn", json_string(trid->subnqn));
	return o;
}

static json_t *ascii_field(const char *p, size_t len)
{
	while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\0'))
		len--;
	return json_stringn(p, len);
}

static int nvme_bdev_dump_info_json(void *ctxt, json_t *driver_specific)
{
	struct nvme_bdev *nb = ctxt;
	const struct ust_nvme_ctrlr_data *cd = ust_nvme_ctrlr_get_data(nb->nctrlr->ctrlr);
	json_t *arr = json_array(), *o = json_object(), *c = json_object();

	json_object_set_new(o, "trid", trid_json(&nb->nctrlr->trid));
	json_object_set_new(c, "vendor_id", json_sprintf("0x%04x", cd->vid));
	json_object_set_new(c, "model_number", ascii_field(cd->mn, sizeof(cd->mn)));
	json_object_set_new(c, "serial_number", ascii_field(cd->sn, sizeof(cd->sn)));
	json_object_set_new(c, "firmware_revision", ascii_field(cd->fr, sizeof(cd->fr)));
	json_object_set_new(c, "cntlid", json_integer(cd->cntlid));
	json_object_set_new(o, "ctrlr_data", c);
	json_object_set_new(o, "ns_data", json_pack("{s:i}", "id", (int)nb->nsid));
	json_array_append_new(arr, o);
	json_object_set_new(driver_specific, "nvme", arr);
	return 0;
}

static void maybe_finish_detach(struct nvme_bdev_ctrlr *n);

static int nvme_bdev_destruct(void *ctxt)
{
	struct nvme_bdev *nb = ctxt;
	struct nvme_bdev_ctrlr *n = nb->nctrlr;

	TAILQ_REMOVE(&n->bdevs, nb, link);
	free(nb->disk.name);
	free(nb);
	n->num_bdevs--;
	maybe_finish_detach(n);
	return 0;
}

static const struct ust_bdev_fn_table g_nvme_fn_table = {
	.destruct = nvme_bdev_destruct,
	.submit_request = nvme_bdev_submit,
	.io_type_supported = nvme_bdev_io_type_supported,
	.get_io_channel = nvme_bdev_get_io_channel,
	.dump_info_json = nvme_bdev_dump_info_json,
};

/* ---- namespaces -> bdevs --------------------------------------------------------- */

static struct nvme_bdev *find_bdev(struct nvme_bdev_ctrlr *n, uint32_t nsid)
{
	struct nvme_bdev *nb;

	TAILQ_FOREACH(nb, &n->bdevs, link) {
		if (nb->nsid == nsid)
			return nb;
	}
	return NULL;
}

static int create_bdev(struct nvme_bdev_ctrlr *n, uint32_t nsid, json_t *names)
{
	struct ust_nvme_ns *ns = ust_nvme_ctrlr_get_ns(n->ctrlr, nsid);
	const struct ust_nvme_ctrlr_data *cd = ust_nvme_ctrlr_get_data(n->ctrlr);
	struct nvme_bdev *nb;
	char name[300];
	int rc;

	nb = calloc(1, sizeof(*nb));
	if (nb == NULL)
		return -ENOMEM;
	snprintf(name, sizeof(name), "%sn%u", n->name, nsid);
	nb->disk.name = strdup(name);
	if (nb->disk.name == NULL) {
		free(nb);
		return -ENOMEM;
	}
	nb->nctrlr = n;
	nb->ns = ns;
	nb->nsid = nsid;
	nb->disk.ctxt = nb;
	nb->disk.product_name = "NVMe disk";
	nb->disk.blocklen = ust_nvme_ns_get_sector_size(ns);
	nb->disk.blockcnt = ust_nvme_ns_get_num_sectors(ns);
	nb->disk.write_cache = cd->vwc & 1;
	nb->disk.max_transfer_blocks = ust_nvme_ns_get_max_io_blocks(ns);
	/* Write Zeroes takes 16-bit counts; one DSM range is enough then too. */
	nb->disk.max_unmap_blocks = 65536;
	/*
	 * PRPs need every element but the first page aligned; the core
	 * guarantees that with buf_align = the page size. SGLs take any dword.
	 */
	nb->disk.buf_align = ust_nvme_ctrlr_uses_sgl(n->ctrlr)
				     ? 4
				     : ust_nvme_ctrlr_get_page_size(n->ctrlr);
	ust_nvme_ns_get_uuid(ns, nb->disk.uuid.u);
	nb->disk.md_len = ust_nvme_ns_get_md_size(ns);
	nb->disk.module = &g_nvme_module;
	nb->disk.fn_table = &g_nvme_fn_table;
	TAILQ_INSERT_TAIL(&n->bdevs, nb, link);
	n->num_bdevs++;
	rc = ust_bdev_register(&nb->disk);
	if (rc != 0) {
		UST_ERRLOG("bdev_nvme %s: cannot register bdev %s: %s\n", n->name, name,
			   strerror(-rc));
		TAILQ_REMOVE(&n->bdevs, nb, link);
		n->num_bdevs--;
		free(nb->disk.name);
		free(nb);
		return rc;
	}
	if (names != NULL)
		json_array_append_new(names, json_string(name));
	return 0;
}

static void create_bdevs(struct nvme_bdev_ctrlr *n, json_t *names)
{
	uint32_t nsid;

	for (nsid = ust_nvme_ctrlr_get_first_active_ns(n->ctrlr); nsid != 0;
	     nsid = ust_nvme_ctrlr_get_next_active_ns(n->ctrlr, nsid)) {
		if (find_bdev(n, nsid) == NULL)
			create_bdev(n, nsid, names);
	}
}

/* After a namespace attribute notice: new namespaces appear, gone ones leave. */
static void apply_ns_changes(struct nvme_bdev_ctrlr *n)
{
	struct nvme_bdev *nb, *tmp;
	struct ust_nvme_ns *ns;

	for (nb = TAILQ_FIRST(&n->bdevs); nb != NULL; nb = tmp) {
		tmp = TAILQ_NEXT(nb, link);
		ns = ust_nvme_ctrlr_get_ns(n->ctrlr, nb->nsid);
		if (ns == NULL) {
			if (!nb->removing) {
				UST_NOTICELOG("bdev_nvme: namespace %u of %s is gone; removing %s\n",
					      nb->nsid, n->name, nb->disk.name);
				nb->removing = true;
				ust_bdev_unregister(&nb->disk, NULL, NULL);
			}
		} else if (ust_nvme_ns_get_num_sectors(ns) != nb->disk.blockcnt &&
			   ust_nvme_ns_get_sector_size(ns) == nb->disk.blocklen) {
			ust_bdev_notify_blockcnt_change(&nb->disk, ust_nvme_ns_get_num_sectors(ns));
		}
	}
	create_bdevs(n, NULL);
}

static void on_ns_change(void *ctx, struct ust_nvme_ctrlr *ctrlr)
{
	struct nvme_bdev_ctrlr *n = ctx;

	/* Acted on from the poller; this may run on a thread waiting on the admin queue. */
	__atomic_store_n(&n->ns_changed, true, __ATOMIC_RELEASE);
}

/* ---- detach ------------------------------------------------------------------------ */

static void io_device_gone(void *io_device)
{
	struct nvme_bdev_ctrlr *n = io_device;

	n->state = NCTRLR_SHUTTING_DOWN;
	if (ust_nvme_ctrlr_detach_start(n->ctrlr) != 0)
		UST_ERRLOG("bdev_nvme %s: controller still has queue pairs\n", n->name);
}

static void maybe_finish_detach(struct nvme_bdev_ctrlr *n)
{
	if (n->state != NCTRLR_DETACHING || n->num_bdevs > 0)
		return;
	ust_io_device_unregister(n, io_device_gone);
}

static void start_detach(struct nvme_bdev_ctrlr *n, bdev_nvme_done_cb cb, void *ctx)
{
	struct nvme_bdev *nb, *tmp;

	n->state = NCTRLR_DETACHING;
	/* I/O held for a reconnect that will not come now fails instead. */
	__atomic_store_n(&n->fast_fail, true, __ATOMIC_RELEASE);
	n->detach_cb = cb;
	n->detach_ctx = ctx;
	for (nb = TAILQ_FIRST(&n->bdevs); nb != NULL; nb = tmp) {
		tmp = TAILQ_NEXT(nb, link);
		if (!nb->removing) {
			nb->removing = true;
			ust_bdev_unregister(&nb->disk, NULL, NULL);
		}
	}
	maybe_finish_detach(n);
}

static void finish_resets(struct nvme_bdev_ctrlr *n, int rc)
{
	struct reset_waiter *w;

	n->resetting = false;
	while ((w = TAILQ_FIRST(&n->reset_waiters)) != NULL) {
		TAILQ_REMOVE(&n->reset_waiters, w, link);
		w->cb(w->ctx, rc);
		free(w);
	}
}

static void ctrlr_gone(struct nvme_bdev_ctrlr *n)
{
	bdev_nvme_done_cb cb = n->detach_cb;
	void *ctx = n->detach_ctx;

	ust_poller_unregister(&n->admin_poller);
	TAILQ_REMOVE(&g_nctrlrs, n, link);
	finish_resets(n, -ENODEV);
	UST_NOTICELOG("bdev_nvme: controller %s detached\n", n->name);
	ctrlr_free(n);
	if (cb != NULL)
		cb(ctx, 0);
	if (g_fini_started && TAILQ_EMPTY(&g_nctrlrs))
		ust_bdev_module_fini_done();
}

/* ---- reconnect ------------------------------------------------------------------------ */

static uint64_t sec_to_ticks(uint64_t sec)
{
	return sec * ust_get_ticks_hz();
}

static bool reconnect_wanted(const struct nvme_bdev_ctrlr *n)
{
	return n->ropts.ctrlr_loss_timeout_sec != 0;
}

static void reconnect_attempt(struct nvme_bdev_ctrlr *n)
{
	int rc = ust_nvme_ctrlr_reset(n->ctrlr);

	/* -EBUSY: a reset is running already; its outcome counts as this attempt. */
	if (rc != 0 && rc != -EBUSY) {
		UST_ERRLOG("bdev_nvme %s: reconnect attempt cannot start: %s\n", n->name,
			   strerror(-rc));
		n->rstate = RECONNECT_WAIT;
		n->next_attempt_tick = ust_get_ticks() + sec_to_ticks(n->ropts.reconnect_delay_sec);
		return;
	}
	n->rstate = RECONNECT_RESETTING;
}

static void reconnect_schedule(struct nvme_bdev_ctrlr *n, uint64_t now)
{
	uint32_t shift = n->attempts < RECONNECT_BACKOFF_MAX_SHIFT ? n->attempts
								   : RECONNECT_BACKOFF_MAX_SHIFT;
	uint64_t delay = (uint64_t)n->ropts.reconnect_delay_sec << shift;

	n->attempts++;
	n->rstate = RECONNECT_WAIT;
	n->next_attempt_tick = now + sec_to_ticks(delay);
	UST_WARNLOG("bdev_nvme %s: reconnect attempt %u failed; next in %" PRIu64 " s\n",
		    n->name, n->attempts, delay);
}

/*
 * Runs from the admin poller while the controller is attached: notices a
 * failure, drives the attempts and the two deadlines, and gives up (detach)
 * at ctrlr_loss_timeout_sec.
 */
static void reconnect_poll(struct nvme_bdev_ctrlr *n)
{
	uint64_t now = ust_get_ticks();
	int st;

	if (n->resetting || !reconnect_wanted(n))
		return;
	st = ust_nvme_ctrlr_get_init_status(n->ctrlr);
	if (n->rstate == RECONNECT_IDLE) {
		if (!ust_nvme_ctrlr_is_failed(n->ctrlr) || st == -ENODEV)
			return;
		UST_ERRLOG("bdev_nvme %s: controller lost (%s); reconnecting\n", n->name,
			   strerror(-st));
		n->loss_tick = now;
		n->attempts = 0;
		reconnect_attempt(n);
		return;
	}
	/* Back, by our attempt or by a reset someone else asked for. */
	if (st == 0) {
		UST_NOTICELOG("bdev_nvme %s: reconnected after %u failed attempt(s)\n", n->name,
			      n->attempts);
		n->rstate = RECONNECT_IDLE;
		__atomic_store_n(&n->fast_fail, false, __ATOMIC_RELEASE);
		return;
	}
	if (n->rstate == RECONNECT_RESETTING && st != -EAGAIN)
		reconnect_schedule(n, now);
	if (n->ropts.fast_io_fail_timeout_sec != 0 && !n->fast_fail &&
	    now - n->loss_tick >= sec_to_ticks(n->ropts.fast_io_fail_timeout_sec)) {
		UST_WARNLOG("bdev_nvme %s: fast_io_fail_timeout_sec passed; failing I/O\n",
			    n->name);
		__atomic_store_n(&n->fast_fail, true, __ATOMIC_RELEASE);
	}
	if (n->ropts.ctrlr_loss_timeout_sec > 0 &&
	    now - n->loss_tick >= sec_to_ticks((uint64_t)n->ropts.ctrlr_loss_timeout_sec)) {
		UST_ERRLOG("bdev_nvme %s: not reconnected within ctrlr_loss_timeout_sec (%d); "
			   "removing its bdevs\n",
			   n->name, n->ropts.ctrlr_loss_timeout_sec);
		n->rstate = RECONNECT_IDLE;
		n->removed = true;
		start_detach(n, NULL, NULL);
		return;
	}
	if (n->rstate == RECONNECT_WAIT && (int64_t)(now - n->next_attempt_tick) >= 0)
		reconnect_attempt(n);
	return;
}

static const char *sec_rule(const struct bdev_nvme_reconnect_opts *o)
{
	int64_t loss = o->ctrlr_loss_timeout_sec;

	if (loss < -1)
		return "ctrlr_loss_timeout_sec must be -1, 0 or positive";
	if (loss == 0) {
		if (o->reconnect_delay_sec != 0 || o->fast_io_fail_timeout_sec != 0)
			return "reconnect_delay_sec and fast_io_fail_timeout_sec need a "
			       "ctrlr_loss_timeout_sec";
		return NULL;
	}
	if (o->reconnect_delay_sec == 0)
		return "reconnect_delay_sec must be positive when reconnecting";
	if (loss > 0 && o->reconnect_delay_sec > (uint64_t)loss)
		return "reconnect_delay_sec must not exceed ctrlr_loss_timeout_sec";
	if (o->fast_io_fail_timeout_sec != 0 &&
	    (o->fast_io_fail_timeout_sec < o->reconnect_delay_sec ||
	     (loss > 0 && o->fast_io_fail_timeout_sec > (uint64_t)loss)))
		return "fast_io_fail_timeout_sec must lie between reconnect_delay_sec and "
		       "ctrlr_loss_timeout_sec";
	return NULL;
}

int bdev_nvme_check_reconnect_opts(const struct bdev_nvme_reconnect_opts *o, char *err,
				   size_t errlen)
{
	const char *why = o != NULL ? sec_rule(o) : "no options";

	if (why == NULL)
		return 0;
	if (err != NULL)
		snprintf(err, errlen, "%s", why);
	return -EINVAL;
}

int bdev_nvme_set_options(const struct bdev_nvme_reconnect_opts *o)
{
	int rc = bdev_nvme_check_reconnect_opts(o, NULL, 0);

	if (rc == 0)
		g_default_reconnect = *o;
	return rc;
}

void bdev_nvme_get_options(struct bdev_nvme_reconnect_opts *o)
{
	*o = g_default_reconnect;
}

/* ---- the admin poller -------------------------------------------------------------- */

static void attach_finished(struct nvme_bdev_ctrlr *n, int rc)
{
	bdev_nvme_attach_cb cb = n->attach_cb;
	void *ctx = n->attach_ctx;
	json_t *names;

	n->attach_cb = NULL;
	if (rc != 0) {
		UST_ERRLOG("bdev_nvme %s: attaching %s failed: %s\n", n->name, n->trid.traddr,
			   strerror(-rc));
		/* Nothing was registered: shut the controller down and drop it. */
		n->state = NCTRLR_SHUTTING_DOWN;
		ust_nvme_ctrlr_detach_start(n->ctrlr);
		if (cb != NULL)
			cb(ctx, rc, NULL);
		return;
	}
	n->state = NCTRLR_ATTACHED;
	ust_nvme_ctrlr_register_ns_change_callback(n->ctrlr, on_ns_change, n);
	ust_io_device_register(n, channel_create, channel_destroy, sizeof(struct nvme_io_channel),
			       n->name);
	names = json_array();
	create_bdevs(n, names);
	UST_NOTICELOG("bdev_nvme: controller %s (%s) attached with %zu bdev(s)\n", n->name,
		      n->trid.traddr, json_array_size(names));
	if (cb != NULL)
		cb(ctx, 0, names);
	json_decref(names);
}

static int admin_poll(void *arg)
{
	struct nvme_bdev_ctrlr *n = arg;
	int rc;

	if (n->state == NCTRLR_SHUTTING_DOWN) {
		if (ust_nvme_ctrlr_detach_poll(n->ctrlr) == 0)
			ctrlr_gone(n);
		return UST_POLLER_BUSY;
	}
	rc = ust_nvme_ctrlr_process_admin_completions(n->ctrlr);
	if (n->state == NCTRLR_ATTACHING) {
		rc = ust_nvme_ctrlr_get_init_status(n->ctrlr);
		if (rc != -EAGAIN)
			attach_finished(n, rc);
		return UST_POLLER_BUSY;
	}
	if (n->resetting && ust_nvme_ctrlr_get_init_status(n->ctrlr) != -EAGAIN)
		finish_resets(n, ust_nvme_ctrlr_get_init_status(n->ctrlr));
	if (n->state == NCTRLR_ATTACHED &&
	    __atomic_exchange_n(&n->ns_changed, false, __ATOMIC_ACQ_REL)) {
		apply_ns_changes(n);
	}
	if (n->state == NCTRLR_ATTACHED && !n->removed &&
	    ust_nvme_ctrlr_get_init_status(n->ctrlr) == -ENODEV) {
		UST_ERRLOG("bdev_nvme: controller %s was removed; removing its bdevs\n", n->name);
		n->removed = true;
		start_detach(n, NULL, NULL);
	}
	if (n->state == NCTRLR_ATTACHED && !n->removed)
		reconnect_poll(n);
	return rc > 0 ? UST_POLLER_BUSY : UST_POLLER_IDLE;
}

/* ---- management ------------------------------------------------------------------------ */

static bool trid_in_use(const struct ust_nvme_transport_id *trid)
{
	struct nvme_bdev_ctrlr *n;

	TAILQ_FOREACH(n, &g_nctrlrs, link) {
		if (ust_nvme_transport_id_compare(&n->trid, trid) == 0)
			return true;
	}
	return false;
}

int bdev_nvme_attach_controller(const struct bdev_nvme_attach_opts *opts, bdev_nvme_attach_cb cb,
				void *ctx)
{
	struct ust_nvme_ctrlr_opts copts;
	struct nvme_bdev_ctrlr *n;
	int rc;

	if (opts == NULL || opts->name == NULL || opts->name[0] == '\0' ||
	    opts->trid.traddr[0] == '\0')
		return -EINVAL;
	if (opts->reconnect != NULL && bdev_nvme_check_reconnect_opts(opts->reconnect, NULL, 0))
		return -EINVAL;
	if (g_fini_started)
		return -ESHUTDOWN;
	if (find_ctrlr(opts->name) != NULL)
		return -EEXIST;
	if (trid_in_use(&opts->trid))
		return -EBUSY;
	ust_nvme_ctrlr_opts_init(&copts);
	if (opts->hostnqn != NULL) {
		if (strlen(opts->hostnqn) > UST_NVME_NQN_MAX_LEN)
			return -EINVAL;
		snprintf(copts.hostnqn, sizeof(copts.hostnqn), "%s", opts->hostnqn);
	}
	n = calloc(1, sizeof(*n));
	if (n == NULL)
		return -ENOMEM;
	n->name = strdup(opts->name);
	n->hostnqn = opts->hostnqn != NULL ? strdup(opts->hostnqn) : NULL;
	n->trid = opts->trid;
	n->ropts = opts->reconnect != NULL ? *opts->reconnect : g_default_reconnect;
	TAILQ_INIT(&n->bdevs);
	TAILQ_INIT(&n->reset_waiters);
	n->attach_cb = cb;
	n->attach_ctx = ctx;
	n->state = NCTRLR_ATTACHING;
	if (n->name == NULL || (opts->hostnqn != NULL && n->hostnqn == NULL)) {
		ctrlr_free(n);
		return -ENOMEM;
	}
	rc = ust_nvme_ctrlr_construct(&n->trid, &copts, &n->ctrlr);
	if (rc != 0) {
		ctrlr_free(n);
		return rc;
	}
	n->admin_poller = ust_poller_register(admin_poll, n, ADMIN_POLL_US, "nvme_admin");
	if (n->admin_poller == NULL) {
		ust_nvme_detach(n->ctrlr);
		ctrlr_free(n);
		return -ENOMEM;
	}
	TAILQ_INSERT_TAIL(&g_nctrlrs, n, link);
	return 0;
}

int bdev_nvme_detach_controller(const char *name, bdev_nvme_done_cb cb, void *ctx)
{
	struct nvme_bdev_ctrlr *n = find_ctrlr(name);

	if (n == NULL)
		return -ENODEV;
	if (n->state != NCTRLR_ATTACHED)
		return -EBUSY;
	start_detach(n, cb, ctx);
	return 0;
}

int bdev_nvme_reset_controller(const char *name, bdev_nvme_done_cb cb, void *ctx)
{
	struct nvme_bdev_ctrlr *n = find_ctrlr(name);
	struct reset_waiter *w;
	int rc;

	if (n == NULL)
		return -ENODEV;
	if (n->state != NCTRLR_ATTACHED)
		return -EBUSY;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return -ENOMEM;
	if (!n->resetting) {
		rc = ust_nvme_ctrlr_reset(n->ctrlr);
		/* -EBUSY: the driver is already resetting; wait for that one. */
		if (rc != 0 && rc != -EBUSY) {
			free(w);
			return rc;
		}
		n->resetting = true;
	}
	w->cb = cb;
	w->ctx = ctx;
	TAILQ_INSERT_TAIL(&n->reset_waiters, w, link);
	return 0;
}

static const char *ctrlr_state_str(struct nvme_bdev_ctrlr *n)
{
	int st;

	switch (n->state) {
	case NCTRLR_ATTACHING:
		return "initializing";
	case NCTRLR_DETACHING:
	case NCTRLR_SHUTTING_DOWN:
		return "deleting";
	default:
		break;
	}
	if (ust_nvme_ctrlr_is_failed(n->ctrlr))
		return n->rstate != RECONNECT_IDLE ? "reconnecting" : "failed";
	if (n->rstate != RECONNECT_IDLE)
		return "reconnecting";
	st = ust_nvme_ctrlr_get_init_status(n->ctrlr);
	return st == -EAGAIN ? "resetting" : "enabled";
}

int bdev_nvme_get_controllers(const char *name, json_t *array)
{
	struct nvme_bdev_ctrlr *n;
	json_t *c, *host;
	bool found = false;

	TAILQ_FOREACH(n, &g_nctrlrs, link) {
		if (name != NULL && strcmp(name, n->name) != 0)
			continue;
		found = true;
		c = json_object();
		json_object_set_new(c, "state", json_string(ctrlr_state_str(n)));
		json_object_set_new(c, "trid", trid_json(&n->trid));
		json_object_set_new(c, "cntlid",
				    json_integer(ust_nvme_ctrlr_get_data(n->ctrlr)->cntlid));
		host = json_object();
		json_object_set_new(host, "nqn", json_string(n->hostnqn ? n->hostnqn : ""));
		json_object_set_new(c, "host", host);
		json_object_set_new(c, "reconnect_attempts", json_integer(n->attempts));
		json_array_append_new(array, json_pack("{s:s, s:[o]}", "name", n->name, "ctrlrs", c));
	}
	return name != NULL && !found ? -ENODEV : 0;
}

/* ---- module ----------------------------------------------------------------------------- */

static int nvme_module_init(void)
{
	g_fini_started = false;
	memset(&g_default_reconnect, 0, sizeof(g_default_reconnect));
	return 0;
}

static void nvme_module_fini(void)
{
	struct nvme_bdev_ctrlr *n, *tmp;

	g_fini_started = true;
	if (TAILQ_EMPTY(&g_nctrlrs)) {
		ust_bdev_module_fini_done();
		return;
	}
	for (n = TAILQ_FIRST(&g_nctrlrs); n != NULL; n = tmp) {
		tmp = TAILQ_NEXT(n, link);
		if (n->state == NCTRLR_ATTACHED)
			start_detach(n, NULL, NULL);
		else if (n->state == NCTRLR_ATTACHING) {
			n->attach_cb = NULL; /* the caller's context may be gone */
			n->state = NCTRLR_SHUTTING_DOWN;
			ust_nvme_ctrlr_detach_start(n->ctrlr);
		}
	}
}

static json_t *reconnect_json(const struct bdev_nvme_reconnect_opts *o, json_t *obj)
{
	json_object_set_new(obj, "ctrlr_loss_timeout_sec", json_integer(o->ctrlr_loss_timeout_sec));
	json_object_set_new(obj, "reconnect_delay_sec", json_integer(o->reconnect_delay_sec));
	json_object_set_new(obj, "fast_io_fail_timeout_sec",
			    json_integer(o->fast_io_fail_timeout_sec));
	return obj;
}

static void nvme_config_json(json_t *calls)
{
	struct nvme_bdev_ctrlr *n;
	json_t *params;

	/* The defaults first, so that a replay attaches with the same ones. */
	json_array_append_new(calls, json_pack("{s:s, s:o}", "method", "bdev_nvme_set_options",
					       "params", reconnect_json(&g_default_reconnect,
									json_object())));
	TAILQ_FOREACH(n, &g_nctrlrs, link) {
		if (n->state != NCTRLR_ATTACHED)
			continue;
		params = trid_json(&n->trid);
		json_object_set_new(params, "name", json_string(n->name));
		if (n->hostnqn != NULL)
			json_object_set_new(params, "hostnqn", json_string(n->hostnqn));
		reconnect_json(&n->ropts, params);
		json_array_append_new(calls, json_pack("{s:s, s:o}", "method",
						       "bdev_nvme_attach_controller", "params",
						       params));
	}
}
