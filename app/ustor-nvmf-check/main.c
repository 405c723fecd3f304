/*
 * ustor-nvmf-check: exercise the NVMe/TCP initiator against a real target.
 *
 *   ustor-nvmf-check -r 'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:PORT subnqn:NQN'
 *                    [--hdgst] [--ddgst] [--discover] [--mib N] [--outage MARKER]
 *
 * --discover  read the discovery log (same address, discovery NQN) and check
 *             that it lists subnqn.
 * default     attach, print the controller's identity, write a pattern over
 *             N MiB of the first namespace in a mix of sizes (in-capsule and
 *             R2T-driven), read it back and compare.
 * --outage M  keep 16 writes/reads in flight, create file M once I/O runs,
 *             and expect the target to go away: every outstanding request
 *             must complete with an error within 60 s (no hang), then a
 *             reset must fail cleanly. Exit 0 if so.
 *
 * Exit status 0 on success, 1 on failure, 2 on usage errors.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ustor/env.h"
#include "ustor/log.h"
#include "ustor/nvme.h"

struct io {
	void *buf;
	uint64_t lba;
	uint32_t nlb;
	bool busy;
	bool is_write;
	int rc;
	int *outstanding;
	int *errors;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void io_done(void *arg, const struct ust_nvme_cpl *cpl)
{
	struct io *io = arg;

	io->busy = false;
	io->rc = ust_nvme_cpl_to_errno(cpl);
	(*io->outstanding)--;
	if (io->rc != 0)
		(*io->errors)++;
}

static void fill(uint8_t *buf, size_t len, uint64_t lba, uint32_t bs, uint32_t seed)
{
	size_t i;

	for (i = 0; i < len; i += 8) {
		uint64_t v = ((lba + i / bs) << 20) ^ (i % bs) ^ ((uint64_t)seed << 48);

		memcpy(buf + i, &v, 8);
	}
}

static int wait_io(struct ust_nvme_qpair *qp, int *outstanding, uint64_t timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;
	int32_t rc;

	while (*outstanding > 0) {
		rc = ust_nvme_qpair_process_completions(qp, 0);
		if (rc < 0 && *outstanding > 0) {
			/* The core fails every outstanding request before returning an error. */
			fprintf(stderr, "process_completions: %s with %d outstanding\n",
				strerror(-rc), *outstanding);
			return rc;
		}
		if (now_ms() > deadline)
			return -ETIMEDOUT;
	}
	return 0;
}

static int pattern_test(struct ust_nvme_ctrlr *ctrlr, struct ust_nvme_ns *ns, uint32_t mib)
{
	/* Sizes: 4 KiB (in-capsule), 12 KiB, 64 KiB and the max (R2T, MAXH2CDATA). */
	uint32_t bs = ust_nvme_ns_get_sector_size(ns);
	uint32_t maxb = ust_nvme_ns_get_max_io_blocks(ns);
	uint32_t sizes[] = {4096, 12288, 65536, maxb * bs};
	uint64_t total = (uint64_t)mib << 20, nblocks = ust_nvme_ns_get_num_sectors(ns);
	struct ust_nvme_qpair *qp;
	int outstanding = 0, errors = 0, rc = 0;
	uint8_t *wbuf, *rbuf;
	struct io io = {.outstanding = &outstanding, .errors = &errors};
	uint64_t off, lba;
	uint32_t n = 0, len;

	if (total > nblocks * bs)
		total = nblocks * bs;
	qp = ust_nvme_ctrlr_alloc_io_qpair(ctrlr, NULL);
	if (qp == NULL) {
		fprintf(stderr, "alloc_io_qpair: %s\n", strerror(errno));
		return -errno;
	}
	wbuf = ust_dma_malloc(sizes[3], 4096);
	rbuf = ust_dma_malloc(sizes[3], 4096);
	for (off = 0; off < total && rc == 0; off += len, n++) {
		len = sizes[n % 4];
		if (len > total - off)
			len = (uint32_t)(total - off);
		lba = off / bs;
		fill(wbuf, len, lba, bs, 0x5a);
		outstanding = 1;
		rc = ust_nvme_ns_cmd_write(ns, qp, wbuf, lba, len / bs, io_done, &io, 0);
		if (rc == 0)
			rc = wait_io(qp, &outstanding, 30000);
		if (rc == 0 && io.rc != 0)
			rc = io.rc;
		if (rc != 0) {
			fprintf(stderr, "write lba %" PRIu64 " len %u: %s\n", lba, len, strerror(-rc));
			break;
		}
		memset(rbuf, 0, len);
		outstanding = 1;
		rc = ust_nvme_ns_cmd_read(ns, qp, rbuf, lba, len / bs, io_done, &io, 0);
		if (rc == 0)
			rc = wait_io(qp, &outstanding, 30000);
		if (rc == 0 && io.rc != 0)
			rc = io.rc;
		if (rc != 0) {
			fprintf(stderr, "read lba %" PRIu64 " len %u: %s\n", lba, len, strerror(-rc));
			break;
		}
		if (memcmp(wbuf, rbuf, len) != 0) {
			fprintf(stderr, "MISMATCH at lba %" PRIu64 " len %u\n", lba, len);
			rc = -EILSEQ;
		}
	}
	if (rc == 0)
		printf("pattern: wrote and read back %" PRIu64 " bytes in %u commands pairs, sizes up to %u\n",
		       total, n, sizes[3]);
	ust_dma_free(wbuf);
	ust_dma_free(rbuf);
	ust_nvme_ctrlr_free_io_qpair(qp);
	return rc;
}

static int outage_test(struct ust_nvme_ctrlr *ctrlr, struct ust_nvme_ns *ns, const char *marker)
{
	enum { QD = 16 };
	uint32_t bs = ust_nvme_ns_get_sector_size(ns), nlb = 65536 / bs;
	uint64_t nblocks = ust_nvme_ns_get_num_sectors(ns), completed = 0, t0;
	struct ust_nvme_qpair *qp;
	struct io ios[QD];
	int outstanding = 0, errors = 0, i, rc;
	int32_t prc = 0;
	FILE *f;

	qp = ust_nvme_ctrlr_alloc_io_qpair(ctrlr, NULL);
	if (qp == NULL) {
		fprintf(stderr, "alloc_io_qpair: %s\n", strerror(errno));
		return -errno;
	}
	memset(ios, 0, sizeof(ios));
	for (i = 0; i < QD; i++) {
		ios[i].buf = ust_dma_zmalloc(65536, 4096);
		ios[i].outstanding = &outstanding;
		ios[i].errors = &errors;
	}
	t0 = now_ms();
	/* Keep QD commands in flight until the target is gone. */
	while (errors == 0 && now_ms() - t0 < 120000) {
		for (i = 0; i < QD; i++) {
			struct io *io = &ios[i];

			if (io->busy)
				continue;
			if (io->rc == 0 && io->lba + io->nlb > 0)
				completed++;
			io->is_write = !io->is_write;
			io->lba = (uint64_t)((unsigned)rand() % (nblocks / nlb)) * nlb;
			io->nlb = nlb;
			rc = io->is_write ? ust_nvme_ns_cmd_write(ns, qp, io->buf, io->lba, nlb,
								  io_done, io, 0)
					  : ust_nvme_ns_cmd_read(ns, qp, io->buf, io->lba, nlb,
								 io_done, io, 0);
			if (rc != 0) {
				errors++;
				break;
			}
			io->busy = true;
			outstanding++;
		}
		prc = ust_nvme_qpair_process_completions(qp, 0);
		if (prc < 0)
			break;
		ust_nvme_ctrlr_process_admin_completions(ctrlr);
		if (completed > 64 && marker != NULL) {
			f = fopen(marker, "w");
			if (f != NULL)
				fclose(f);
			printf("outage: %" PRIu64 " I/Os done, %d in flight; waiting for the target to go\n",
			       completed, outstanding);
			fflush(stdout);
			marker = NULL;
		}
	}
	t0 = now_ms();
	/* Everything still outstanding must now fail, promptly. */
	while (outstanding > 0 && now_ms() - t0 < 60000) {
		ust_nvme_qpair_process_completions(qp, 0);
		ust_nvme_ctrlr_process_admin_completions(ctrlr);
	}
	printf("outage: process_completions returned %d; %d errors; %d still outstanding after "
	       "%" PRIu64 " ms\n",
	       prc, errors, outstanding, now_ms() - t0);
	if (outstanding > 0) {
		fprintf(stderr, "FAIL: %d requests hang after the target went away\n", outstanding);
		return -ETIMEDOUT;
	}
	if (errors == 0) {
		fprintf(stderr, "FAIL: the target never went away\n");
		return -EIO;
	}
	/* A new submission fails at once; the controller is failed or resetting. */
	rc = ust_nvme_ns_cmd_read(ns, qp, ios[0].buf, 0, nlb, io_done, &ios[0], 0);
	if (rc == 0) {
		outstanding++;
		if (wait_io(qp, &outstanding, 30000) == -ETIMEDOUT) {
			fprintf(stderr, "FAIL: a read after the outage hangs\n");
			return -ETIMEDOUT;
		}
		if (ios[0].rc == 0) {
			fprintf(stderr, "FAIL: a read after the outage succeeded\n");
			return -EIO;
		}
	}
	ust_nvme_ctrlr_free_io_qpair(qp);
	for (i = 0; i < QD; i++)
		ust_dma_free(ios[i].buf);
	/* The target is gone: a reset (reconnect) must fail, not hang or crash. */
	rc = ust_nvme_ctrlr_reset_sync(ctrlr);
	printf("outage: reset after the outage: %s\n", rc == 0 ? "succeeded" : strerror(-rc));
	if (rc == 0) {
		fprintf(stderr, "FAIL: reset succeeded with the target gone\n");
		return -EIO;
	}
	printf("outage: outstanding I/O failed cleanly\n");
	return 0;
}

static void print_trimmed(const char *label, const char *s, size_t len)
{
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\0'))
		len--;
	printf("%s: %.*s\n", label, (int)len, s);
}

static int discover(const struct ust_nvme_transport_id *trid,
		    const struct ust_nvme_ctrlr_opts *opts)
{
	struct ust_nvme_transport_id dtrid = *trid;
	struct ust_nvmf_discovery_log_entry *e;
	uint32_t count, i;
	bool found = false;
	int rc;

	dtrid.subnqn[0] = '\0';
	rc = ust_nvme_discover(&dtrid, opts, &e, &count);
	if (rc != 0) {
		fprintf(stderr, "discover: %s\n", strerror(-rc));
		return rc;
	}
	printf("discovery log: %u records\n", count);
	for (i = 0; i < count; i++) {
		printf("  trtype %u adrfam %u subtype %u portid %u traddr %.256s trsvcid %.32s subnqn %.256s\n",
		       e[i].trtype, e[i].adrfam, e[i].subtype, e[i].portid, e[i].traddr,
		       e[i].trsvcid, e[i].subnqn);
		if (strncmp(e[i].subnqn, trid->subnqn, sizeof(e[i].subnqn)) == 0 &&
		    e[i].trtype == UST_NVME_TRANSPORT_TCP)
			found = true;
	}
	free(e);
	if (!found) {
		fprintf(stderr, "FAIL: %s is not in the discovery log\n", trid->subnqn);
		return -ENOENT;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: ustor-nvmf-check -r TRID [--hdgst] [--ddgst] [--discover] "
			"[--mib N] [--outage MARKER] [--debug]\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"hdgst", no_argument, NULL, 'H'},   {"ddgst", no_argument, NULL, 'D'},
		{"discover", no_argument, NULL, 'd'}, {"mib", required_argument, NULL, 'm'},
		{"outage", required_argument, NULL, 'o'}, {"debug", no_argument, NULL, 'g'},
		{NULL, 0, NULL, 0},
	};
	struct ust_nvme_transport_id trid;
	struct ust_nvme_ctrlr_opts opts;
	struct ust_env_opts eopts;
	struct ust_nvme_ctrlr *ctrlr;
	const struct ust_nvme_ctrlr_data *cd;
	struct ust_nvme_ns *ns;
	const char *tridstr = NULL, *outage = NULL;
	bool do_discover = false;
	uint32_t mib = 4;
	char err[256];
	int c, rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	ust_nvme_ctrlr_opts_init(&opts);
	while ((c = getopt_long(argc, argv, "r:", longopts, NULL)) != -1) {
		switch (c) {
		case 'r': tridstr = optarg; break;
		case 'H': opts.header_digest = true; break;
		case 'D': opts.data_digest = true; break;
		case 'd': do_discover = true; break;
		case 'm': mib = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'o': outage = optarg; break;
		case 'g':
			ust_log_set_flag("nvme");
			ust_log_set_print_level(UST_LOG_DEBUG);
			break;
		default: usage(); return 2;
		}
	}
	if (tridstr == NULL) {
		usage();
		return 2;
	}
	if (ust_nvme_transport_id_parse(&trid, tridstr, err, sizeof(err)) != 0) {
		fprintf(stderr, "bad transport ID: %s\n", err);
		return 2;
	}
	ust_env_opts_init(&eopts);
	eopts.name = "ustor-nvmf-check";
	eopts.quiet = true;
	eopts.mem_size_mb = 256;
	rc = ust_env_init(&eopts);
	if (rc != 0) {
		fprintf(stderr, "env init: %s\n", strerror(-rc));
		return 1;
	}
	if (do_discover) {
		rc = discover(&trid, &opts);
		ust_env_fini();
		return rc == 0 ? 0 : 1;
	}
	/* Keep-alive on, as a fabrics host would run. */
	opts.keep_alive_timeout_ms = 10000;
	opts.num_io_queues = 4;
	opts.io_queue_size = 64;
	ctrlr = ust_nvme_connect(&trid, &opts);
	if (ctrlr == NULL) {
		fprintf(stderr, "connect: %s\n", strerror(errno));
		ust_env_fini();
		return 1;
	}
	cd = ust_nvme_ctrlr_get_data(ctrlr);
	print_trimmed("model", cd->mn, sizeof(cd->mn));
	print_trimmed("serial", cd->sn, sizeof(cd->sn));
	print_trimmed("firmware", cd->fr, sizeof(cd->fr));
	printf("subnqn: %.256s\n", cd->subnqn);
	printf("ioccsz %u iorcsz %u icdoff %u namespaces %u io queues %u digests %s%s\n", cd->ioccsz,
	       cd->iorcsz, cd->icdoff, ust_nvme_ctrlr_get_num_ns(ctrlr),
	       ust_nvme_ctrlr_get_num_io_queues(ctrlr), opts.header_digest ? "header " : "",
	       opts.data_digest ? "data" : "");
	ns = ust_nvme_ctrlr_get_ns(ctrlr, ust_nvme_ctrlr_get_first_active_ns(ctrlr));
	if (ns == NULL) {
		fprintf(stderr, "no active namespace\n");
		rc = -ENODEV;
	} else {
		printf("namespace %u: %" PRIu64 " blocks of %u bytes\n", ust_nvme_ns_get_id(ns),
		       ust_nvme_ns_get_num_sectors(ns), ust_nvme_ns_get_sector_size(ns));
		rc = outage != NULL ? outage_test(ctrlr, ns, outage) : pattern_test(ctrlr, ns, mib);
	}
	if (ust_nvme_detach(ctrlr) != 0)
		fprintf(stderr, "detach failed\n");
	ust_env_fini();
	printf("%s\n", rc == 0 ? "PASS" : "FAIL");
	return rc == 0 ? 0 : 1;
}
