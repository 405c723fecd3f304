/*
 * ustor-nvme: look at and load NVMe controllers through ustor's userspace
 * driver (the device must be bound to vfio-pci or uio_pci_generic with
 * hugepages reserved: scripts/setup.sh).
 *
 *   ustor-nvme list
 *   ustor-nvme identify  -r TRID [-n NSID]
 *   ustor-nvme smart-log -r TRID
 *   ustor-nvme error-log -r TRID [-e N]
 *   ustor-nvme perf      -r TRID -q 128 -o 4096 -w randread -t 10 [-c MASK] [-M 70] [-n NSID]
 *   ustor-nvme write     -r TRID --lba LBA [-n NSID] FILE
 *   ustor-nvme read      -r TRID --lba LBA --count BLOCKS [-n NSID] FILE
 *
 * identify prints the Identify Controller and Identify Namespace data in the
 * spirit of nvme-cli's id-ctrl/id-ns; perf runs one worker per core of the
 * mask, each with its own I/O queue pair, and prints IOPS, MiB/s and latency
 * percentiles per core and in total, and what the run cost in CPU: process
 * CPU time and TSC cycles per I/O, in all and in the polls that reaped
 * something (the driver's own work, without empty polls). write copies FILE
 * (a whole number of blocks) to the namespace from LBA on and flushes; read
 * copies BLOCKS blocks from LBA on into FILE. Exit status: 0 success, 1 failure
 * (device, I/O error), 2 bad arguments.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "ustor/env.h"
#include "ustor/log.h"
#include "ustor/nvme.h"

#define MAX_QD 4096
#define HIST_BUCKETS 1984

/* ---- common ---------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f, "usage: ustor-nvme list\n"
		   "       ustor-nvme identify  -r TRID [-n NSID]\n"
		   "       ustor-nvme smart-log -r TRID\n"
		   "       ustor-nvme error-log -r TRID [-e ENTRIES]\n"
		   "       ustor-nvme perf -r TRID [-q DEPTH] [-o BYTES] [-w read|write|randread|"
		   "randwrite|randrw] [-M READ%%] [-t SECONDS] [-c CORE_MASK] [-n NSID]\n"
		   "       ustor-nvme write -r TRID --lba LBA [-n NSID] FILE\n"
		   "       ustor-nvme read  -r TRID --lba LBA --count BLOCKS [-n NSID] FILE\n"
		   "TRID is e.g. 'trtype:PCIe traddr:0000:00:04.0'\n");
}

static int init_env(const char *core_mask)
{
	struct ust_env_opts eo;
	int rc;

	ust_env_opts_init(&eo);
	eo.name = "ustor-nvme";
	eo.core_mask = core_mask;
	eo.pci = true;
	eo.quiet = true;
	rc = ust_env_init(&eo);
	if (rc != 0)
		fprintf(stderr, "ustor-nvme: environment initialisation failed: %s\n", strerror(-rc));
	return rc;
}

static struct ust_nvme_ctrlr *connect_trid(const char *str)
{
	struct ust_nvme_transport_id trid;
	struct ust_nvme_ctrlr *ctrlr;
	char err[256];

	if (ust_nvme_transport_id_parse(&trid, str, err, sizeof(err)) != 0) {
		fprintf(stderr, "ustor-nvme: bad transport ID '%s': %s\n", str, err);
		return NULL;
	}
	if (trid.traddr[0] == '\0') {
		fprintf(stderr, "ustor-nvme: the transport ID needs a traddr\n");
		return NULL;
	}
	ctrlr = ust_nvme_connect(&trid, NULL);
	if (ctrlr == NULL)
		fprintf(stderr, "ustor-nvme: cannot attach %s: %s\n", str, strerror(errno));
	return ctrlr;
}

/* Fixed-width ASCII fields are space padded, not NUL terminated. */
static void print_str(const char *label, const char *p, size_t len)
{
	while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\0'))
		len--;
	printf("%-10s: %.*s\n", label, (int)len, p);
}

/* 128-bit little-endian counters, printed exactly when they fit 64 bits. */
static void print_u128(const char *label, const uint8_t *v)
{
	uint64_t lo, hi;

	memcpy(&lo, v, 8);
	memcpy(&hi, v + 8, 8);
	if (hi == 0)
		printf("%-38s: %" PRIu64 "\n", label, lo);
	else
		printf("%-38s: 0x%016" PRIx64 "%016" PRIx64 "\n", label, hi, lo);
}

/* ---- list ----------------------------------------------------------------------- */

static int list_one(void *ctx, const struct ust_pci_addr *addr, const struct ust_pci_id *id,
		    const char *driver)
{
	char name[UST_PCI_ADDR_STRLEN];

	ust_pci_addr_fmt(name, sizeof(name), addr);
	printf("%s  %04x:%04x  %s\n", name, id->vendor_id, id->device_id, driver);
	(*(int *)ctx)++;
	return 0;
}

static int cmd_list(void)
{
	int n = 0, rc;

	rc = ust_pci_enumerate(UST_PCI_CLASS_NVME, list_one, &n);
	if (rc != 0) {
		fprintf(stderr, "ustor-nvme: cannot list PCI devices: %s\n", strerror(-rc));
		return 1;
	}
	if (n == 0)
		printf("no NVMe controller is bound to vfio-pci or uio_pci_generic\n");
	return 0;
}

/* ---- identify ----------------------------------------------------------------------- */

static void print_ctrlr(struct ust_nvme_ctrlr *ctrlr)
{
	const struct ust_nvme_ctrlr_data *cd = ust_nvme_ctrlr_get_data(ctrlr);
	char trid[UST_NVME_TRID_STRING_LEN];
	uint32_t vs = ust_nvme_ctrlr_get_vs(ctrlr), mdts_bytes;
	uint64_t cap = ust_nvme_ctrlr_get_cap(ctrlr);

	ust_nvme_transport_id_fmt(trid, sizeof(trid), ust_nvme_ctrlr_get_transport_id(ctrlr));
	printf("NVMe controller %s\n", trid);
	printf("NVMe version %u.%u.%u  CAP 0x%016" PRIx64 " (MQES %u, TO %u ms, DSTRD %u)\n",
	       vs >> 16, (vs >> 8) & 0xff, vs & 0xff, cap, ust_nvme_cap_mqes(cap) + 1,
	       ust_nvme_cap_to(cap) * 500, ust_nvme_cap_dstrd(cap));
	printf("%-10s: 0x%04x\n", "vid", cd->vid);
	printf("%-10s: 0x%04x\n", "ssvid", cd->ssvid);
	print_str("sn", cd->sn, sizeof(cd->sn));
	print_str("mn", cd->mn, sizeof(cd->mn));
	print_str("fr", cd->fr, sizeof(cd->fr));
	printf("%-10s: %u\n", "rab", cd->rab);
	printf("%-10s: %02x%02x%02x\n", "ieee", cd->ieee[2], cd->ieee[1], cd->ieee[0]);
	printf("%-10s: 0x%x\n", "cmic", cd->cmic);
	mdts_bytes = ust_nvme_ctrlr_get_max_xfer_size(ctrlr);
	printf("%-10s: %u (max transfer %u KiB)\n", "mdts", cd->mdts, mdts_bytes / 1024);
	printf("%-10s: 0x%x\n", "cntlid", cd->cntlid);
	printf("%-10s: 0x%x\n", "ver", cd->ver);
	printf("%-10s: 0x%x\n", "oaes", cd->oaes);
	printf("%-10s: 0x%x\n", "ctratt", cd->ctratt);
	printf("%-10s: 0x%x\n", "oacs", cd->oacs);
	printf("%-10s: %u\n", "acl", cd->acl);
	printf("%-10s: %u\n", "aerl", cd->aerl);
	printf("%-10s: 0x%x\n", "frmw", cd->frmw);
	printf("%-10s: 0x%x\n", "lpa", cd->lpa);
	printf("%-10s: %u\n", "elpe", cd->elpe);
	printf("%-10s: %u\n", "npss", cd->npss);
	printf("%-10s: %u\n", "wctemp", cd->wctemp);
	printf("%-10s: %u\n", "cctemp", cd->cctemp);
	printf("%-10s: %u\n", "kas", cd->kas);
	printf("%-10s: 0x%x\n", "sqes", cd->sqes);
	printf("%-10s: 0x%x\n", "cqes", cd->cqes);
	printf("%-10s: %u\n", "maxcmd", cd->maxcmd);
	printf("%-10s: %u\n", "nn", cd->nn);
	printf("%-10s: 0x%x\n", "oncs", cd->oncs);
	printf("%-10s: 0x%x\n", "fuses", cd->fuses);
	printf("%-10s: 0x%x\n", "fna", cd->fna);
	printf("%-10s: 0x%x\n", "vwc", cd->vwc);
	printf("%-10s: 0x%x (%s)\n", "sgls", cd->sgls,
	       ust_nvme_ctrlr_uses_sgl(ctrlr) ? "using SGLs" : "using PRPs");
	print_str("subnqn", cd->subnqn, sizeof(cd->subnqn));
	printf("%-10s: %u granted\n", "ioqueues", ust_nvme_ctrlr_get_num_io_queues(ctrlr));
}

static void print_ns(struct ust_nvme_ns *ns)
{
	const struct ust_nvme_ns_data *d = ust_nvme_ns_get_data(ns);
	uint32_t i, in_use = ust_nvme_ns_flbas_index(d);

	printf("\nNVMe namespace %u\n", ust_nvme_ns_get_id(ns));
	printf("%-10s: %" PRIu64 " (%" PRIu64 " bytes, %.2f GiB)\n", "nsze", d->nsze,
	       ust_nvme_ns_get_size(ns), (double)ust_nvme_ns_get_size(ns) / (1 << 30));
	printf("%-10s: %" PRIu64 "\n", "ncap", d->ncap);
	printf("%-10s: %" PRIu64 "\n", "nuse", d->nuse);
	printf("%-10s: 0x%x\n", "nsfeat", d->nsfeat);
	printf("%-10s: %u\n", "nlbaf", d->nlbaf);
	printf("%-10s: 0x%x\n", "flbas", d->flbas);
	printf("%-10s: 0x%x\n", "mc", d->mc);
	printf("%-10s: 0x%x\n", "dpc", d->dpc);
	printf("%-10s: 0x%x\n", "dps", d->dps);
	printf("%-10s: 0x%x\n", "nmic", d->nmic);
	printf("%-10s: ", "nguid");
	for (i = 0; i < 16; i++)
		printf("%02x", d->nguid[i]);
	printf("\n%-10s: ", "eui64");
	for (i = 0; i < 8; i++)
		printf("%02x", d->eui64[i]);
	printf("\n");
	for (i = 0; i <= d->nlbaf && i < 64; i++)
		printf("lbaf %2u : ms:%-3u lbads:%-2u rp:%u%s\n", i, ust_nvme_lbaf_ms(d->lbaf[i]),
		       ust_nvme_lbaf_lbads(d->lbaf[i]), ust_nvme_lbaf_rp(d->lbaf[i]),
		       i == in_use ? " (in use)" : "");
}

static int cmd_identify(struct ust_nvme_ctrlr *ctrlr, uint32_t nsid)
{
	struct ust_nvme_ns *ns;
	uint32_t id;

	print_ctrlr(ctrlr);
	if (nsid != 0) {
		ns = ust_nvme_ctrlr_get_ns(ctrlr, nsid);
		if (ns == NULL) {
			fprintf(stderr, "ustor-nvme: namespace %u is not active\n", nsid);
			return 1;
		}
		print_ns(ns);
		return 0;
	}
	printf("%-10s: ", "active ns");
	for (id = ust_nvme_ctrlr_get_first_active_ns(ctrlr); id != 0;
	     id = ust_nvme_ctrlr_get_next_active_ns(ctrlr, id))
		printf("%u ", id);
	printf("\n");
	for (id = ust_nvme_ctrlr_get_first_active_ns(ctrlr); id != 0;
	     id = ust_nvme_ctrlr_get_next_active_ns(ctrlr, id))
		print_ns(ust_nvme_ctrlr_get_ns(ctrlr, id));
	return 0;
}

/* ---- log pages ------------------------------------------------------------------------- */

static int cmd_smart_log(struct ust_nvme_ctrlr *ctrlr)
{
	struct ust_nvme_health_log *h = ust_dma_zmalloc(sizeof(*h), 4096);
	struct ust_nvme_cpl cpl;
	int rc, i;

	if (h == NULL)
		return 1;
	rc = ust_nvme_ctrlr_get_health_log(ctrlr, UINT32_MAX, h, &cpl);
	if (rc != 0) {
		fprintf(stderr, "ustor-nvme: Get Log Page (SMART) failed: %s\n",
			rc == -EIO ? ust_nvme_cpl_status_str(&cpl) : strerror(-rc));
		ust_dma_free(h);
		return 1;
	}
	printf("%-38s: 0x%x\n", "critical_warning", h->critical_warning);
	printf("%-38s: %d C (%u K)\n", "temperature", (int)h->composite_temperature - 273,
	       h->composite_temperature);
	printf("%-38s: %u%%\n", "available_spare", h->available_spare);
	printf("%-38s: %u%%\n", "available_spare_threshold", h->available_spare_threshold);
	printf("%-38s: %u%%\n", "percentage_used", h->percentage_used);
	print_u128("data_units_read", h->data_units_read);
	print_u128("data_units_written", h->data_units_written);
	print_u128("host_read_commands", h->host_read_commands);
	print_u128("host_write_commands", h->host_write_commands);
	print_u128("controller_busy_time", h->controller_busy_time);
	print_u128("power_cycles", h->power_cycles);
	print_u128("power_on_hours", h->power_on_hours);
	print_u128("unsafe_shutdowns", h->unsafe_shutdowns);
	print_u128("media_errors", h->media_errors);
	print_u128("num_err_log_entries", h->num_error_info_log_entries);
	printf("%-38s: %u\n", "warning_temp_time", h->warning_temp_time);
	printf("%-38s: %u\n", "critical_composite_temp_time", h->critical_temp_time);
	for (i = 0; i < 8; i++) {
		if (h->temp_sensor[i] != 0)
			printf("temperature_sensor_%d%17s: %d C\n", i + 1, "",
			       (int)h->temp_sensor[i] - 273);
	}
	ust_dma_free(h);
	return 0;
}

static int cmd_error_log(struct ust_nvme_ctrlr *ctrlr, uint32_t n)
{
	const struct ust_nvme_ctrlr_data *cd = ust_nvme_ctrlr_get_data(ctrlr);
	struct ust_nvme_error_log_entry *e;
	struct ust_nvme_cpl cpl;
	uint32_t i;
	int rc;

	if (n == 0 || n > (uint32_t)cd->elpe + 1)
		n = (uint32_t)cd->elpe + 1;
	e = ust_dma_zmalloc(sizeof(*e) * n, 4096);
	if (e == NULL)
		return 1;
	rc = ust_nvme_ctrlr_get_error_log(ctrlr, e, n, &cpl);
	if (rc != 0) {
		fprintf(stderr, "ustor-nvme: Get Log Page (Error Information) failed: %s\n",
			rc == -EIO ? ust_nvme_cpl_status_str(&cpl) : strerror(-rc));
		ust_dma_free(e);
		return 1;
	}
	for (i = 0; i < n; i++) {
		if (e[i].error_count == 0)
			continue;
		printf("entry %u: error_count %" PRIu64 " sqid %u cmdid 0x%x status 0x%x "
		       "parm_err_loc 0x%x lba %" PRIu64 " nsid %u\n",
		       i, e[i].error_count, e[i].sqid, e[i].cid, e[i].status >> 1,
		       e[i].error_location, e[i].lba, e[i].nsid);
	}
	printf("%u entr%s read\n", n, n == 1 ? "y" : "ies");
	ust_dma_free(e);
	return 0;
}

/* ---- perf ------------------------------------------------------------------------------- */

enum workload { WL_READ, WL_WRITE, WL_RANDREAD, WL_RANDWRITE, WL_RANDRW };

struct perf_cfg {
	struct ust_nvme_ctrlr *ctrlr;
	struct ust_nvme_ns *ns;
	uint32_t qd;
	uint32_t io_size;
	enum workload wl;
	uint32_t read_pct;
	double seconds;
};

/* Log-linear latency histogram (ns): exact below 64, ~3% buckets above. */
static uint32_t hist_index(uint64_t v)
{
	uint32_t b;

	if (v < 64)
		return (uint32_t)v;
	b = 63 - (uint32_t)__builtin_clzll(v);
	return 64 + (b - 6) * 32 + (uint32_t)((v >> (b - 5)) & 31);
}

static uint64_t hist_value(uint32_t idx)
{
	uint32_t b, mant;

	if (idx < 64)
		return idx;
	b = (idx - 64) / 32 + 6;
	mant = (idx - 64) % 32;
	return (uint64_t)(32 + mant) << (b - 5);
}

struct worker;

struct perf_io {
	struct worker *w;
	void *buf;
	uint64_t start;
	bool is_read;
};

struct worker {
	const struct perf_cfg *cfg;
	uint32_t core;
	struct ust_nvme_qpair *qpair;
	struct perf_io *ios;
	uint64_t seed;
	uint64_t next_lba;
	uint64_t blocks_per_io;
	uint64_t max_slot;
	uint64_t ios_done;
	uint64_t errors;
	uint64_t lat_sum_ns;
	uint64_t busy_ticks;
	uint64_t hist[HIST_BUCKETS];
	uint32_t outstanding;
	bool stop;
	int rc;
};

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int submit_io(struct perf_io *io);

static void perf_io_done(void *arg, const struct ust_nvme_cpl *cpl)
{
	struct perf_io *io = arg;
	struct worker *w = io->w;
	uint64_t ns = (ust_get_ticks() - io->start) * 1000000000ULL / ust_get_ticks_hz();

	w->outstanding--;
	if (ust_nvme_cpl_is_error(cpl)) {
		if (w->errors++ == 0)
			fprintf(stderr, "ustor-nvme: core %u: I/O error: %s\n", w->core,
				ust_nvme_cpl_status_str(cpl));
	} else {
		w->ios_done++;
		w->lat_sum_ns += ns;
		w->hist[hist_index(ns) < HIST_BUCKETS ? hist_index(ns) : HIST_BUCKETS - 1]++;
	}
	if (!w->stop && submit_io(io) != 0)
		w->stop = true;
}

static int submit_io(struct perf_io *io)
{
	struct worker *w = io->w;
	const struct perf_cfg *c = w->cfg;
	uint64_t slot;
	int rc;

	switch (c->wl) {
	case WL_READ:
	case WL_WRITE:
		slot = w->next_lba++ % w->max_slot;
		io->is_read = c->wl == WL_READ;
		break;
	case WL_RANDREAD:
	case WL_RANDWRITE:
		slot = xorshift(&w->seed) % w->max_slot;
		io->is_read = c->wl == WL_RANDREAD;
		break;
	default:
		slot = xorshift(&w->seed) % w->max_slot;
		io->is_read = xorshift(&w->seed) % 100 < c->read_pct;
		break;
	}
	io->start = ust_get_ticks();
	if (io->is_read)
		rc = ust_nvme_ns_cmd_read(c->ns, w->qpair, io->buf, slot * w->blocks_per_io,
					  (uint32_t)w->blocks_per_io, perf_io_done, io, 0);
	else
		rc = ust_nvme_ns_cmd_write(c->ns, w->qpair, io->buf, slot * w->blocks_per_io,
					   (uint32_t)w->blocks_per_io, perf_io_done, io, 0);
	if (rc != 0) {
		fprintf(stderr, "ustor-nvme: core %u: submit failed: %s\n", w->core, strerror(-rc));
		w->rc = rc;
		return rc;
	}
	w->outstanding++;
	return 0;
}

static int worker_run(void *arg)
{
	struct worker *w = arg;
	uint64_t hz = ust_get_ticks_hz(), end, next_admin;
	uint32_t i;

	end = ust_get_ticks() + (uint64_t)(w->cfg->seconds * (double)hz);
	next_admin = ust_get_ticks();
	for (i = 0; i < w->cfg->qd; i++) {
		if (submit_io(&w->ios[i]) != 0) {
			w->stop = true;
			break;
		}
	}
	while (w->outstanding > 0) {
		uint64_t t0 = ust_get_ticks();
		int32_t n = ust_nvme_qpair_process_completions(w->qpair, 0);

		if (n < 0) {
			fprintf(stderr, "ustor-nvme: core %u: the controller failed\n", w->core);
			w->rc = -ENXIO;
			break;
		}
		/* Reaping and resubmitting; empty polls are left out. */
		if (n > 0)
			w->busy_ticks += ust_get_ticks() - t0;
		if (!w->stop && ust_get_ticks() >= end)
			w->stop = true;
		/* The main core also keeps the admin queue going (AERs, health). */
		if (w->core == ust_env_get_main_core() && ust_get_ticks() >= next_admin) {
			ust_nvme_ctrlr_process_admin_completions(w->cfg->ctrlr);
			next_admin = ust_get_ticks() + hz / 100;
		}
	}
	return 0;
}

static uint64_t hist_percentile(const uint64_t *hist, uint64_t total, double pct)
{
	uint64_t want = (uint64_t)((double)total * pct / 100.0), seen = 0;
	uint32_t i;

	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += hist[i];
		if (seen > want)
			return hist_value(i);
	}
	return hist_value(HIST_BUCKETS - 1);
}

static void print_result(const char *label, const struct perf_cfg *c, const uint64_t *hist,
			 uint64_t ios, uint64_t lat_sum)
{
	double iops = (double)ios / c->seconds;

	printf("%-10s %12.0f %10.2f %10.1f %10.1f %10.1f %10.1f %10.1f\n", label, iops,
	       iops * c->io_size / (1 << 20), ios ? (double)lat_sum / (double)ios / 1000.0 : 0.0,
	       (double)hist_percentile(hist, ios, 50) / 1000.0,
	       (double)hist_percentile(hist, ios, 99) / 1000.0,
	       (double)hist_percentile(hist, ios, 99.9) / 1000.0,
	       (double)hist_percentile(hist, ios, 99.99) / 1000.0);
}

static int parse_workload(const char *s, enum workload *wl)
{
	static const char *const names[] = {"read", "write", "randread", "randwrite", "randrw"};
	int i;

	for (i = 0; i < 5; i++) {
		if (strcmp(s, names[i]) == 0) {
			*wl = (enum workload)i;
			return 0;
		}
	}
	return -EINVAL;
}

static int worker_setup(struct worker *w, const struct perf_cfg *c, uint32_t core)
{
	uint32_t bs = ust_nvme_ns_get_sector_size(c->ns), i;

	w->cfg = c;
	w->core = core;
	w->seed = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)core << 32) ^ ust_get_ticks();
	w->blocks_per_io = c->io_size / bs;
	w->max_slot = ust_nvme_ns_get_num_sectors(c->ns) / w->blocks_per_io;
	w->next_lba = (uint64_t)core * (w->max_slot / 16);
	w->qpair = ust_nvme_ctrlr_alloc_io_qpair(c->ctrlr, NULL);
	if (w->qpair == NULL) {
		fprintf(stderr, "ustor-nvme: cannot allocate an I/O queue pair for core %u: %s\n",
			core, strerror(errno));
		return -1;
	}
	w->ios = calloc(c->qd, sizeof(*w->ios));
	if (w->ios == NULL)
		return -1;
	for (i = 0; i < c->qd; i++) {
		w->ios[i].w = w;
		w->ios[i].buf = ust_dma_zmalloc(c->io_size, 4096);
		if (w->ios[i].buf == NULL) {
			fprintf(stderr, "ustor-nvme: no DMA memory for the I/O buffers\n");
			return -1;
		}
		memset(w->ios[i].buf, (int)(i & 0xff), c->io_size);
	}
	return 0;
}

static void worker_cleanup(struct worker *w)
{
	uint32_t i;

	if (w->ios != NULL) {
		for (i = 0; i < w->cfg->qd; i++)
			ust_dma_free(w->ios[i].buf);
		free(w->ios);
	}
	if (w->qpair != NULL)
		ust_nvme_ctrlr_free_io_qpair(w->qpair);
}

static int cmd_perf(struct perf_cfg *c)
{
	static uint64_t total_hist[HIST_BUCKETS];
	struct worker *workers[UST_ENV_MAX_CORES] = {0};
	uint32_t core, n = 0, i, j, bs = ust_nvme_ns_get_sector_size(c->ns);
	uint32_t max_qd;
	uint64_t total_ios = 0, total_lat = 0, errors = 0, busy = 0, t_start, t_end;
	struct rusage ru0, ru1;
	double cpu_s, wall_s;
	char label[32];
	int rc = 0;

	if (c->io_size == 0 || c->io_size % bs != 0 ||
	    c->io_size > ust_nvme_ctrlr_get_max_xfer_size(c->ctrlr)) {
		fprintf(stderr, "ustor-nvme: -o must be a multiple of %u and at most %u\n", bs,
			ust_nvme_ctrlr_get_max_xfer_size(c->ctrlr));
		return 2;
	}
	max_qd = ust_nvme_cap_mqes(ust_nvme_ctrlr_get_cap(c->ctrlr)) + 1;
	if (max_qd > ust_nvme_ctrlr_get_opts(c->ctrlr)->io_queue_size)
		max_qd = ust_nvme_ctrlr_get_opts(c->ctrlr)->io_queue_size;
	max_qd--; /* one queue slot always stays empty */
	if (c->qd > max_qd) {
		fprintf(stderr, "ustor-nvme: -q %u is more than an I/O queue holds (%u)\n", c->qd,
			max_qd);
		return 2;
	}
	for (core = ust_env_get_first_core(); core != UINT32_MAX; core = ust_env_get_next_core(core)) {
		workers[n] = calloc(1, sizeof(struct worker));
		if (workers[n] == NULL || worker_setup(workers[n], c, core) != 0) {
			rc = 1;
			n++;
			goto out;
		}
		n++;
	}
	printf("%s of %u bytes, queue depth %u, %u core(s), %.1f s on namespace %u\n",
	       (const char *[]){"read", "write", "randread", "randwrite", "randrw"}[c->wl],
	       c->io_size, c->qd, n, c->seconds, ust_nvme_ns_get_id(c->ns));
	getrusage(RUSAGE_SELF, &ru0);
	t_start = ust_get_ticks();
	for (i = 0; i < n; i++) {
		if (workers[i]->core != ust_env_get_main_core() &&
		    ust_env_launch_on_core(workers[i]->core, worker_run, workers[i]) != 0) {
			fprintf(stderr, "ustor-nvme: cannot start core %u\n", workers[i]->core);
			rc = 1;
		}
	}
	for (i = 0; i < n; i++) {
		if (workers[i]->core == ust_env_get_main_core())
			worker_run(workers[i]);
	}
	ust_env_wait_all_cores();
	t_end = ust_get_ticks();
	getrusage(RUSAGE_SELF, &ru1);
	printf("%-10s %12s %10s %10s %10s %10s %10s %10s\n", "core", "IOPS", "MiB/s", "avg us",
	       "p50 us", "p99 us", "p99.9 us", "p99.99 us");
	for (i = 0; i < n; i++) {
		struct worker *w = workers[i];

		snprintf(label, sizeof(label), "core %u", w->core);
		print_result(label, c, w->hist, w->ios_done, w->lat_sum_ns);
		for (j = 0; j < HIST_BUCKETS; j++)
			total_hist[j] += w->hist[j];
		total_ios += w->ios_done;
		total_lat += w->lat_sum_ns;
		busy += w->busy_ticks;
		errors += w->errors;
		if (w->rc != 0)
			rc = 1;
	}
	print_result("Total", c, total_hist, total_ios, total_lat);
	cpu_s = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
		(double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
		(double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
		(double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
	wall_s = (double)(t_end - t_start) / (double)ust_get_ticks_hz();
	if (total_ios > 0) {
		/* A polling worker burns its core whether or not I/O is due: the
		 * total is an upper bound, the busy figure the driver's own cost. */
		printf("CPU: %.2f s (usr+sys) in %.2f s, %.2f us/IO; cycles/IO %.0f total, %.0f busy "
		       "(TSC %.0f MHz)\n",
		       cpu_s, wall_s, cpu_s * 1e6 / (double)total_ios,
		       (double)(t_end - t_start) * n / (double)total_ios, (double)busy / (double)total_ios,
		       (double)ust_get_ticks_hz() / 1e6);
	}
	if (errors > 0) {
		fprintf(stderr, "ustor-nvme: %" PRIu64 " I/O error(s)\n", errors);
		rc = 1;
	}
out:
	for (i = 0; i < n; i++) {
		if (workers[i] != NULL) {
			worker_cleanup(workers[i]);
			free(workers[i]);
		}
	}
	return rc;
}

/* ---- write / read ------------------------------------------------------------------------ */

struct sync_io {
	bool done;
	bool failed;
	char status[64];
};

static void sync_io_done(void *arg, const struct ust_nvme_cpl *cpl)
{
	struct sync_io *io = arg;

	io->done = true;
	if (ust_nvme_cpl_is_error(cpl)) {
		io->failed = true;
		snprintf(io->status, sizeof(io->status), "%s", ust_nvme_cpl_status_str(cpl));
	}
}

/* Wait for one command submitted with sync_io_done; rc from submission. */
static int sync_io_wait(struct ust_nvme_qpair *qpair, struct sync_io *io, int rc, const char *what,
			uint64_t lba)
{
	if (rc != 0) {
		fprintf(stderr, "ustor-nvme: cannot submit %s at LBA %" PRIu64 ": %s\n", what, lba,
			strerror(-rc));
		return 1;
	}
	while (!io->done) {
		if (ust_nvme_qpair_process_completions(qpair, 0) < 0) {
			fprintf(stderr, "ustor-nvme: the controller failed during %s\n", what);
			return 1;
		}
	}
	if (io->failed) {
		fprintf(stderr, "ustor-nvme: %s at LBA %" PRIu64 " failed: %s\n", what, lba,
			io->status);
		return 1;
	}
	return 0;
}

/* Copy between FILE and blocks [lba, lba + count) (count 0 on write: the file's size). */
static int cmd_rw(struct ust_nvme_ctrlr *ctrlr, struct ust_nvme_ns *ns, bool write, uint64_t lba,
		  uint64_t count, const char *path)
{
	uint32_t bs = ust_nvme_ns_get_sector_size(ns);
	uint64_t nsect = ust_nvme_ns_get_num_sectors(ns), done = 0;
	uint32_t chunk_blocks = ust_nvme_ns_get_max_io_blocks(ns);
	struct ust_nvme_qpair *qpair = NULL;
	struct sync_io io;
	FILE *f;
	void *buf = NULL;
	int rc = 1;

	if (chunk_blocks > (1u << 20) / bs)
		chunk_blocks = (1u << 20) / bs;
	f = fopen(path, write ? "rb" : "wb");
	if (f == NULL) {
		fprintf(stderr, "ustor-nvme: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (write) {
		long size;

		if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
			fprintf(stderr, "ustor-nvme: %s: cannot get its size\n", path);
			goto out;
		}
		if (size == 0 || (uint64_t)size % bs != 0) {
			fprintf(stderr, "ustor-nvme: %s: %ld bytes is not a whole number of %u-byte "
				"blocks\n", path, size, bs);
			goto out;
		}
		count = (uint64_t)size / bs;
	}
	if (count == 0 || lba >= nsect || count > nsect - lba) {
		fprintf(stderr, "ustor-nvme: blocks %" PRIu64 "+%" PRIu64 " are not all inside the "
			"namespace (%" PRIu64 " blocks)\n", lba, count, nsect);
		goto out;
	}
	buf = ust_dma_zmalloc((size_t)chunk_blocks * bs, 4096);
	qpair = ust_nvme_ctrlr_alloc_io_qpair(ctrlr, NULL);
	if (buf == NULL || qpair == NULL) {
		fprintf(stderr, "ustor-nvme: no DMA memory or I/O queue pair\n");
		goto out;
	}
	while (done < count) {
		uint32_t n = count - done < chunk_blocks ? (uint32_t)(count - done) : chunk_blocks;
		size_t bytes = (size_t)n * bs;

		memset(&io, 0, sizeof(io));
		if (write) {
			if (fread(buf, 1, bytes, f) != bytes) {
				fprintf(stderr, "ustor-nvme: %s: short read\n", path);
				goto out;
			}
			if (sync_io_wait(qpair, &io,
					 ust_nvme_ns_cmd_write(ns, qpair, buf, lba + done, n,
							       sync_io_done, &io, 0),
					 "write", lba + done) != 0)
				goto out;
		} else {
			if (sync_io_wait(qpair, &io,
					 ust_nvme_ns_cmd_read(ns, qpair, buf, lba + done, n,
							      sync_io_done, &io, 0),
					 "read", lba + done) != 0)
				goto out;
			if (fwrite(buf, 1, bytes, f) != bytes) {
				fprintf(stderr, "ustor-nvme: %s: %s\n", path, strerror(errno));
				goto out;
			}
		}
		done += n;
	}
	if (write) {
		memset(&io, 0, sizeof(io));
		if (sync_io_wait(qpair, &io, ust_nvme_ns_cmd_flush(ns, qpair, sync_io_done, &io),
				 "flush", lba) != 0)
			goto out;
	}
	printf("%s %" PRIu64 " blocks of %u bytes %s LBA %" PRIu64 "\n", write ? "wrote" : "read",
	       count, bs, write ? "at" : "from", lba);
	rc = 0;
out:
	if (qpair != NULL)
		ust_nvme_ctrlr_free_io_qpair(qpair);
	ust_dma_free(buf);
	if (fclose(f) != 0 && rc == 0) {
		fprintf(stderr, "ustor-nvme: %s: %s\n", path, strerror(errno));
		rc = 1;
	}
	return rc;
}

/* ---- main -------------------------------------------------------------------------------- */

struct args {
	const char *trid;
	const char *core_mask;
	uint32_t nsid;
	uint32_t entries;
	uint64_t lba;
	uint64_t count;
	bool have_lba;
	const char *file;
	struct perf_cfg perf;
};

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;
	unsigned long long x;

	errno = 0;
	x = strtoull(s, &end, 0);
	if (errno != 0 || *end != '\0' || end == s || s[0] == '-')
		return -EINVAL;
	*v = x;
	return 0;
}

static int parse_u32(const char *s, uint32_t *v)
{
	char *end;
	unsigned long x;

	errno = 0;
	x = strtoul(s, &end, 0);
	if (errno != 0 || *end != '\0' || end == s || x > UINT32_MAX)
		return -EINVAL;
	*v = (uint32_t)x;
	return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option longopts[] = {
		{"lba", required_argument, NULL, 'L'},
		{"count", required_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	char *end;
	int opt;

	while ((opt = getopt_long(argc, argv, "r:n:q:o:w:M:t:c:e:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'L':
			if (parse_u64(optarg, &a->lba))
				return -1;
			a->have_lba = true;
			break;
		case 'C': if (parse_u64(optarg, &a->count) || a->count == 0) return -1; break;
		case 'r': a->trid = optarg; break;
		case 'c': a->core_mask = optarg; break;
		case 'n': if (parse_u32(optarg, &a->nsid)) return -1; break;
		case 'e': if (parse_u32(optarg, &a->entries)) return -1; break;
		case 'q':
			if (parse_u32(optarg, &a->perf.qd) || a->perf.qd == 0 || a->perf.qd > MAX_QD)
				return -1;
			break;
		case 'o': if (parse_u32(optarg, &a->perf.io_size)) return -1; break;
		case 'M':
			if (parse_u32(optarg, &a->perf.read_pct) || a->perf.read_pct > 100)
				return -1;
			break;
		case 'w': if (parse_workload(optarg, &a->perf.wl)) return -1; break;
		case 't':
			a->perf.seconds = strtod(optarg, &end);
			if (*end != '\0' || a->perf.seconds <= 0)
				return -1;
			break;
		case 'h': usage(stdout); exit(0);
		default: return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct args a = {.perf = {.qd = 128, .io_size = 4096, .wl = WL_RANDREAD, .read_pct = 50,
				  .seconds = 10.0}};
	struct ust_nvme_ctrlr *ctrlr;
	const char *cmd;
	bool rw;
	int rc;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	cmd = argv[1];
	optind = 2;
	if (parse_args(argc, argv, &a) != 0) {
		usage(stderr);
		return 2;
	}
	rw = strcmp(cmd, "write") == 0 || strcmp(cmd, "read") == 0;
	if (rw && optind == argc - 1)
		a.file = argv[optind++];
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (rw && (!a.have_lba || (strcmp(cmd, "read") == 0) != (a.count != 0))) {
		fprintf(stderr, "ustor-nvme: %s\n",
			strcmp(cmd, "read") == 0 ? "read needs --lba, --count and a FILE"
						 : "write needs --lba and a FILE (no --count: the "
						   "file's size is the count)");
		return 2;
	}
	ust_log_set_print_level(UST_LOG_NOTICE);
	if (strcmp(cmd, "list") == 0)
		return cmd_list();
	if (strcmp(cmd, "identify") != 0 && strcmp(cmd, "smart-log") != 0 &&
	    strcmp(cmd, "error-log") != 0 && strcmp(cmd, "perf") != 0 && !rw) {
		fprintf(stderr, "ustor-nvme: unknown command '%s'\n", cmd);
		usage(stderr);
		return 2;
	}
	if (a.trid == NULL) {
		fprintf(stderr, "ustor-nvme: -r TRID is required\n");
		return 2;
	}
	if (init_env(strcmp(cmd, "perf") == 0 ? a.core_mask : NULL) != 0)
		return 1;
	ctrlr = connect_trid(a.trid);
	if (ctrlr == NULL) {
		ust_env_fini();
		return 1;
	}
	if (strcmp(cmd, "identify") == 0) {
		rc = cmd_identify(ctrlr, a.nsid);
	} else if (strcmp(cmd, "smart-log") == 0) {
		rc = cmd_smart_log(ctrlr);
	} else if (strcmp(cmd, "error-log") == 0) {
		rc = cmd_error_log(ctrlr, a.entries);
	} else {
		a.perf.ctrlr = ctrlr;
		a.perf.ns = ust_nvme_ctrlr_get_ns(ctrlr, a.nsid ? a.nsid
							       : ust_nvme_ctrlr_get_first_active_ns(ctrlr));
		if (a.perf.ns == NULL) {
			fprintf(stderr, "ustor-nvme: no such active namespace\n");
			rc = 1;
		} else if (rw) {
			rc = cmd_rw(ctrlr, a.perf.ns, strcmp(cmd, "write") == 0, a.lba, a.count, a.file);
		} else {
			rc = cmd_perf(&a.perf);
		}
	}
	ust_nvme_detach(ctrlr);
	ust_env_fini();
	return rc;
}
