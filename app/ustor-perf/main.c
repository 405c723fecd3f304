/*
 * ustor-perf: benchmark and data verifier for any bdev.
 *
 *   ustor-perf -c cfg.json -b NAME -q 128 -o 4096 -w randread -t 10 [-m MASK]
 *
 * The bdevs come from the JSON config (the format ustord -c takes). One job
 * runs on each core of the mask (see job.c); when all are done this file
 * prints a line per core and a Total line (IOPS, MiB/s, latency average,
 * p50, p99, p99.9, and the CPU cost per I/O from the job thread's busy
 * ticks and from the CPU time the OS gave it: the two differ when the
 * machine is shared) and optionally writes them as JSON (-j).
 *
 * Guarantees: exit 0 only when every I/O succeeded and, with -w verify,
 * every block read back was exactly what was written; 1 on any I/O error,
 * miscompare or start-up failure (missing bdev, config error), with the
 * reason on stderr; 2 on bad arguments. Defaults: polling mode always, no
 * RPC server.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ustor/app.h"
#include "ustor/bdev.h"
#include "ustor/env.h"
#include "ustor/json.h"
#include "ustor/log.h"
#include "ustor/rpc.h"
#include "ustor/thread.h"

#include "perf.h"

#define MAX_QUEUE_DEPTH 65536
#define MAX_IO_SIZE (64ULL << 20)

struct perf_run {
	struct perf_config cfg;
	struct perf_job *jobs[UST_ENV_MAX_CORES];
	uint32_t job_count;
	uint32_t jobs_done;
	int rc;
	bool wait_rpc;                /* -z: start on the perform_tests RPC */
	bool started;
	struct ust_rpc_request *req;  /* the perform_tests call to answer */
	struct ust_poller *stop_timer;
};

static struct perf_run g_run = {
	.cfg = {
		.queue_depth = 128,
		.io_size = 4096,
		.workload = PERF_RANDREAD,
		.workload_name = "randread",
		.read_percent = 50,
		.seconds = 10.0,
	},
};

/* ---- reporting ---------------------------------------------------------- */

struct perf_figures {
	double iops;
	double mibps;
	double avg_us;
	double p50_us;
	double p99_us;
	double p999_us;
	double max_us;
	double cycles_per_io; /* busy ticks of the job thread per I/O */
	double ns_per_io;     /* wall time of the core per I/O */
	double cpu_ns_per_io; /* CPU time of the job thread per I/O (0: unknown) */
};

static double ticks_to_us(uint64_t ticks)
{
	return (double)ticks * 1e6 / (double)ust_get_ticks_hz();
}

static void figures_compute(struct perf_figures *f, const struct perf_result *r, double seconds)
{
	uint64_t hz = ust_get_ticks_hz();

	memset(f, 0, sizeof(*f));
	if (seconds > 0) {
		f->iops = (double)r->ios / seconds;
		f->mibps = (double)r->bytes / seconds / (1024.0 * 1024.0);
	}
	if (r->hist.count > 0) {
		f->avg_us = (double)r->hist.sum / (double)r->hist.count * 1e6 / (double)hz;
		f->p50_us = ticks_to_us(perf_hist_quantile(&r->hist, 0.50));
		f->p99_us = ticks_to_us(perf_hist_quantile(&r->hist, 0.99));
		f->p999_us = ticks_to_us(perf_hist_quantile(&r->hist, 0.999));
		f->max_us = ticks_to_us(r->hist.max);
	}
	if (r->ios > 0) {
		f->cycles_per_io = (double)r->busy_ticks / (double)r->ios;
		f->ns_per_io = (double)r->elapsed_ticks * 1e9 / (double)hz / (double)r->ios;
		f->cpu_ns_per_io = (double)r->cpu_ns / (double)r->ios;
	}
}

static double result_seconds(const struct perf_result *r)
{
	return (double)r->elapsed_ticks / (double)ust_get_ticks_hz();
}

static void print_line(const char *label, const struct perf_figures *f)
{
	printf("%-8s %12.2f %10.2f %10.2f %10.2f %10.2f %10.2f %10.1f\n", label, f->iops, f->mibps,
	       f->avg_us, f->p50_us, f->p99_us, f->p999_us, f->cycles_per_io);
}

static json_t *figures_json(const struct perf_figures *f, const struct perf_result *r)
{
	return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:f, s:f, s:f, s:f}",
			 "iops",
			 f->iops, "mibps", f->mibps, "lat_avg_us", f->avg_us, "lat_p50_us",
			 f->p50_us, "lat_p99_us", f->p99_us, "lat_p999_us", f->p999_us,
			 "lat_max_us", f->max_us, "ios", (json_int_t)r->ios, "errors",
			 (json_int_t)r->errors, "miscompares", (json_int_t)r->miscompares,
			 "cycles_per_io", f->cycles_per_io, "ns_per_io", f->ns_per_io,
			 "cpu_ns_per_io", f->cpu_ns_per_io, "iops_per_cpu_second",
			 f->cpu_ns_per_io > 0 ? 1e9 / f->cpu_ns_per_io : 0.0);
}

/* The total: counts and histograms add up, rates add up per core. */
static void total_compute(struct perf_run *run, struct perf_result *total,
			  struct perf_figures *tf)
{
	struct perf_figures f;
	const struct perf_result *r;
	uint32_t i;

	memset(total, 0, sizeof(*total));
	perf_hist_init(&total->hist);
	memset(tf, 0, sizeof(*tf));
	for (i = 0; i < run->job_count; i++) {
		r = perf_job_result(run->jobs[i]);
		total->ios += r->ios;
		total->bytes += r->bytes;
		total->errors += r->errors;
		total->miscompares += r->miscompares;
		total->verified_blocks += r->verified_blocks;
		total->passes += r->passes;
		total->busy_ticks += r->busy_ticks;
		total->elapsed_ticks += r->elapsed_ticks;
		total->cpu_ns += r->cpu_ns;
		perf_hist_merge(&total->hist, &r->hist);
		figures_compute(&f, r, result_seconds(r));
		tf->iops += f.iops;
		tf->mibps += f.mibps;
	}
	figures_compute(&f, total, 1.0);
	tf->avg_us = f.avg_us;
	tf->p50_us = f.p50_us;
	tf->p99_us = f.p99_us;
	tf->p999_us = f.p999_us;
	tf->max_us = f.max_us;
	tf->cycles_per_io = f.cycles_per_io;
	tf->ns_per_io = f.ns_per_io;
	tf->cpu_ns_per_io = f.cpu_ns_per_io;
}

static json_t *results_json(struct perf_run *run, const struct perf_result *total,
			    const struct perf_figures *tf)
{
	struct perf_figures f;
	const struct perf_result *r;
	json_t *root, *cores, *core;
	uint32_t i;

	cores = json_array();
	for (i = 0; i < run->job_count; i++) {
		r = perf_job_result(run->jobs[i]);
		figures_compute(&f, r, result_seconds(r));
		core = figures_json(&f, r);
		json_object_set_new(core, "core", json_integer(r->core));
		json_object_set_new(core, "seconds", json_real(result_seconds(r)));
		json_array_append_new(cores, core);
	}
	root = json_pack("{s:s, s:s, s:I, s:I, s:f, s:I, s:o, s:o, s:I, s:I}", "bdev",
			 run->cfg.bdev_name, "workload", run->cfg.workload_name, "queue_depth",
			 (json_int_t)run->cfg.queue_depth, "io_size", (json_int_t)run->cfg.io_size,
			 "seconds", run->cfg.seconds, "tick_hz", (json_int_t)ust_get_ticks_hz(),
			 "cores", cores, "total", figures_json(tf, total), "errors",
			 (json_int_t)total->errors, "miscompares", (json_int_t)total->miscompares);
	if (root != NULL && run->cfg.workload == PERF_VERIFY) {
		json_object_set_new(root, "verified_blocks",
				    json_integer((json_int_t)total->verified_blocks));
	}
	return root;
}

static int write_json(struct perf_run *run, const struct perf_result *total,
		      const struct perf_figures *tf)
{
	json_t *root = results_json(run, total, tf);
	int rc;

	if (root == NULL) {
		return -ENOMEM;
	}
	rc = ust_json_write_file(run->cfg.json_path, root);
	json_decref(root);
	return rc;
}

/* -z: answer perform_tests with the results, or with the reason of the failure. */
static void answer_rpc(struct perf_run *run, const struct perf_result *total,
		       const struct perf_figures *tf)
{
	json_t *root;

	if (run->req == NULL) {
		return;
	}
	root = results_json(run, total, tf);
	if (root == NULL) {
		ust_rpc_send_errno(run->req, -ENOMEM);
	} else {
		json_object_set_new(root, "failed", json_boolean(run->rc != 0));
		ust_rpc_send_result(run->req, root);
	}
	run->req = NULL;
}

static void print_report(struct perf_run *run)
{
	struct perf_result total;
	struct perf_figures f, tf;
	const struct perf_result *r;
	char label[16];
	uint32_t i;
	int rc;

	printf("%-8s %12s %10s %10s %10s %10s %10s %10s\n", "", "IOPS", "MiB/s", "avg us",
	       "p50 us", "p99 us", "p99.9 us", "cyc/IO");
	for (i = 0; i < run->job_count; i++) {
		r = perf_job_result(run->jobs[i]);
		figures_compute(&f, r, result_seconds(r));
		snprintf(label, sizeof(label), "Core %u", r->core);
		print_line(label, &f);
	}
	total_compute(run, &total, &tf);
	print_line("Total", &tf);
	printf("(cyc/IO: busy ticks of the job thread per I/O at %" PRIu64 " ticks/s; %.1f ns of "
	       "core time per I/O; %.1f ns of CPU time the OS gave the job threads per I/O)\n",
	       ust_get_ticks_hz(), tf.ns_per_io, tf.cpu_ns_per_io);
	if (run->cfg.workload == PERF_VERIFY) {
		printf("verify: %" PRIu64 " blocks read back and checked in %" PRIu64
		       " write/read-back passes, %" PRIu64 " miscompares\n", total.verified_blocks,
		       total.passes, total.miscompares);
	}
	for (i = 0; i < run->job_count; i++) {
		r = perf_job_result(run->jobs[i]);
		if (r->errors > 0 || r->miscompares > 0) {
			fprintf(stderr, "core %u: %" PRIu64 " I/O errors, %" PRIu64
				" miscompares; first: %s\n", r->core, r->errors, r->miscompares,
				r->first_error);
		}
	}
	if (total.errors > 0 || total.miscompares > 0) {
		fprintf(stderr, "ustor-perf: FAILED (%" PRIu64 " errors, %" PRIu64
			" miscompares)\n", total.errors, total.miscompares);
		run->rc = 1;
	}
	if (total.ios == 0 && run->rc == 0) {
		fprintf(stderr, "ustor-perf: FAILED: no I/O completed\n");
		run->rc = 1;
	}
	if (run->cfg.json_path != NULL) {
		rc = write_json(run, &total, &tf);
		if (rc != 0) {
			fprintf(stderr, "ustor-perf: cannot write %s: %s\n", run->cfg.json_path,
				strerror(-rc));
			run->rc = 1;
		}
	}
	answer_rpc(run, &total, &tf);
	fflush(stdout);
}

/* ---- running ------------------------------------------------------------ */

static int delayed_stop(void *ctx)
{
	struct perf_run *run = ctx;

	ust_poller_unregister(&run->stop_timer);
	ust_app_stop(run->rc);
	return UST_POLLER_BUSY;
}

/* With an RPC answer out, give the server a moment to send it before shutdown. */
static void run_stop(struct perf_run *run, int rc)
{
	if (run->rc == 0) {
		run->rc = rc;
	}
	if (run->req != NULL) {
		ust_rpc_send_error(run->req, UST_JSONRPC_ERROR_INTERNAL_ERROR,
				   "ustor-perf could not run: see its standard error");
		run->req = NULL;
	}
	if (run->wait_rpc) {
		run->stop_timer = ust_poller_register(delayed_stop, run, 200 * 1000, "perf_stop");
		if (run->stop_timer != NULL) {
			return;
		}
	}
	ust_app_stop(run->rc);
}

static void job_done(struct perf_job *job, void *ctx)
{
	struct perf_run *run = ctx;

	run->jobs_done++;
	if (run->jobs_done < run->job_count) {
		return;
	}
	print_report(run);
	run_stop(run, run->rc);
}

static void list_bdevs(void)
{
	struct ust_bdev *b;

	fprintf(stderr, "bdevs present:");
	for (b = ust_bdev_first(); b != NULL; b = ust_bdev_next(b)) {
		fprintf(stderr, " %s", ust_bdev_get_name(b));
	}
	fprintf(stderr, "%s\n", ust_bdev_first() == NULL ? " none" : "");
}

/* What can be checked before any job runs, with a message saying what is wrong. */
static int check_bdev(const struct perf_config *cfg)
{
	struct ust_bdev *bdev = ust_bdev_get_by_name(cfg->bdev_name);
	uint32_t bs;

	if (bdev == NULL) {
		fprintf(stderr, "ustor-perf: bdev '%s' not found\n", cfg->bdev_name);
		list_bdevs();
		return -ENODEV;
	}
	bs = ust_bdev_get_block_size(bdev);
	if (cfg->io_size % bs != 0) {
		fprintf(stderr, "ustor-perf: I/O size %" PRIu64 " is not a multiple of the block "
			"size %u of bdev %s\n", cfg->io_size, bs, cfg->bdev_name);
		return -EINVAL;
	}
	if (cfg->io_size / bs > UINT32_MAX) {
		fprintf(stderr, "ustor-perf: I/O size %" PRIu64 " is too large\n", cfg->io_size);
		return -EINVAL;
	}
	if (cfg->workload == PERF_VERIFY && bs < sizeof(struct perf_block_hdr)) {
		fprintf(stderr, "ustor-perf: -w verify needs blocks of at least %zu bytes; %s has "
			"%u\n", sizeof(struct perf_block_hdr), cfg->bdev_name, bs);
		return -EINVAL;
	}
	return 0;
}

static void print_banner(const struct perf_config *cfg, uint32_t cores)
{
	printf("ustor-perf: bdev %s, %s", cfg->bdev_name, cfg->workload_name);
	if (cfg->workload == PERF_RW || cfg->workload == PERF_RANDRW) {
		printf(" (%u%% reads)", cfg->read_percent);
	}
	printf(", queue depth %u, I/O size %" PRIu64 ", %.1f s, %u core%s%s\n",
	       cfg->queue_depth, cfg->io_size, cfg->seconds, cores, cores == 1 ? "" : "s",
	       ust_env_no_huge() ? ", no hugepages" : "");
	fflush(stdout);
}

static void start_jobs(void *ctx)
{
	struct perf_run *run = ctx;
	uint32_t core, count = 0, index = 0;
	uint64_t seed = run->cfg.seed != 0 ? run->cfg.seed : ust_get_ticks();
	struct perf_job *job;

	if (check_bdev(&run->cfg) != 0) {
		run_stop(run, 1);
		return;
	}
	for (core = ust_env_get_first_core(); core != UINT32_MAX; core = ust_env_get_next_core(core)) {
		count++;
	}
	print_banner(&run->cfg, count);
	for (core = ust_env_get_first_core(); core != UINT32_MAX; core = ust_env_get_next_core(core)) {
		job = perf_job_start(&run->cfg, core, index, count,
				     perf_rand(&seed) | 1, job_done, run);
		if (job == NULL) {
			break;
		}
		run->jobs[index++] = job;
		run->job_count = index;
	}
	if (index < count) {
		/* Jobs already started still report; the run fails either way. */
		run->rc = 1;
		if (index == 0) {
			run_stop(run, 1);
		}
		run->job_count = index;
	}
}

static void examine_done(void *ctx)
{
	start_jobs(ctx);
}

static void run_begin(struct perf_run *run)
{
	int rc;

	run->started = true;
	rc = ust_bdev_wait_for_examine(examine_done, run);
	if (rc != 0) {
		fprintf(stderr, "ustor-perf: waiting for bdev examine failed: %s\n", strerror(-rc));
		run_stop(run, 1);
	}
}

static void perf_start(void *ctx)
{
	struct perf_run *run = ctx;

	if (run->wait_rpc) {
		printf("ustor-perf: waiting for the perform_tests RPC on %s\n",
		       ust_app_get_opts()->rpc_addr);
		fflush(stdout);
		return;
	}
	run_begin(run);
}

/* -z: the run starts on this call and its answer carries the results. */
static void rpc_perform_tests(struct ust_rpc_request *req, const json_t *params)
{
	if (!g_run.wait_rpc || g_run.started) {
		ust_rpc_send_error(req, UST_JSONRPC_ERROR_INVALID_STATE,
				   g_run.started ? "a run is already in progress"
						 : "ustor-perf was not started with -z");
		return;
	}
	g_run.req = req;
	run_begin(&g_run);
}
UST_RPC_REGISTER("perform_tests", rpc_perform_tests, UST_RPC_RUNTIME)

/* ---- arguments ---------------------------------------------------------- */

static const struct {
	const char *name;
	enum perf_workload workload;
} g_workloads[] = {
	{"randread", PERF_RANDREAD}, {"randwrite", PERF_RANDWRITE}, {"read", PERF_READ},
	{"write", PERF_WRITE},       {"rw", PERF_RW},               {"randrw", PERF_RANDRW},
	{"verify", PERF_VERIFY},
};

static int parse_u64(const char *opt, const char *arg, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 0);
	if (errno != 0 || end == arg || *end != '\0' || arg[0] == '-' || v < min || v > max) {
		fprintf(stderr, "invalid %s '%s' (expected %" PRIu64 "..%" PRIu64 ")\n", opt, arg,
			min, max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* Bytes, with an optional k/K or m/M suffix (powers of 1024). */
static int parse_size(const char *arg, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mult = 1;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (*end == 'k' || *end == 'K') {
		mult = 1024;
		end++;
	} else if (*end == 'm' || *end == 'M') {
		mult = 1024 * 1024;
		end++;
	}
	if (errno != 0 || end == arg || *end != '\0' || arg[0] == '-' || v == 0 ||
	    v > MAX_IO_SIZE / mult) {
		fprintf(stderr, "invalid -o '%s' (expected bytes, e.g. 4096 or 4k, at most 64M)\n",
			arg);
		return -EINVAL;
	}
	*out = v * mult;
	return 0;
}

static int parse_workload(const char *arg, struct perf_config *cfg)
{
	size_t i;

	for (i = 0; i < sizeof(g_workloads) / sizeof(g_workloads[0]); i++) {
		if (strcmp(arg, g_workloads[i].name) == 0) {
			cfg->workload = g_workloads[i].workload;
			cfg->workload_name = g_workloads[i].name;
			return 0;
		}
	}
	fprintf(stderr, "invalid -w '%s' (expected randread, randwrite, read, write, rw, "
		"randrw or verify)\n", arg);
	return -EINVAL;
}

static int parse_seconds(const char *arg, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno != 0 || end == arg || *end != '\0' || !(v > 0) || v > 86400) {
		fprintf(stderr, "invalid -t '%s' (expected seconds, > 0)\n", arg);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int parse_opt(int ch, char *arg, void *ctx)
{
	struct perf_config *cfg = ctx;
	uint64_t v;
	int rc;

	switch (ch) {
	case 'b':
		cfg->bdev_name = arg;
		return 0;
	case 'q':
		rc = parse_u64("-q", arg, 1, MAX_QUEUE_DEPTH, &v);
		cfg->queue_depth = (uint32_t)v;
		return rc;
	case 'o':
		return parse_size(arg, &cfg->io_size);
	case 'w':
		return parse_workload(arg, cfg);
	case 'M':
		rc = parse_u64("-M", arg, 0, 100, &v);
		cfg->read_percent = (uint32_t)v;
		return rc;
	case 't':
		return parse_seconds(arg, &cfg->seconds);
	case 'j':
		cfg->json_path = arg;
		return 0;
	case 'S':
		return parse_u64("--seed", arg, 1, UINT64_MAX, &cfg->seed);
	case 'z':
		g_run.wait_rpc = true;
		return 0;
	}
	return -EINVAL;
}

static const struct option g_long[] = {
	{"bdev", required_argument, NULL, 'b'},
	{"queue-depth", required_argument, NULL, 'q'},
	{"io-size", required_argument, NULL, 'o'},
	{"workload", required_argument, NULL, 'w'},
	{"rwmixread", required_argument, NULL, 'M'},
	{"time", required_argument, NULL, 't'},
	{"json", required_argument, NULL, 'j'},
	{"seed", required_argument, NULL, 'S'},
	{"wait-for-rpc", no_argument, NULL, 'z'},
	{NULL, 0, NULL, 0},
};

static void usage(void)
{
	printf("Usage: ustor-perf -c CONFIG -b BDEV [OPTION]...\n"
	       "Benchmark or verify a bdev: one job per core of the mask.\n"
	       " -b, --bdev NAME         the bdev to run on (required)\n"
	       " -q, --queue-depth N     I/Os in flight per core (default 128)\n"
	       " -o, --io-size BYTES     I/O size, e.g. 4096 or 4k (default 4096)\n"
	       " -w, --workload W        randread (default), randwrite, read, write, rw,\n"
	       "                         randrw or verify\n"
	       " -M, --rwmixread PCT     reads in rw/randrw, percent (default 50)\n"
	       " -t, --time SECONDS      run time (default 10)\n"
	       " -j, --json FILE         also write the results as JSON\n"
	       " -S, --seed N            random seed (default: from the clock)\n"
	       " -z, --wait-for-rpc      start only when the perform_tests RPC comes (needs\n"
	       "                         -r SOCKET); its answer carries the results\n"
	       "Defaults: --poll-mode always, no RPC server (-r enables one).\n\n");
}

int main(int argc, char **argv)
{
	struct ust_app_opts opts;
	int rc;

	ust_app_opts_init(&opts, "ustor-perf");
	opts.rpc_addr = NULL;
	opts.poll_mode = UST_POLL_ALWAYS;
	opts.log_level = UST_LOG_WARN;
	rc = ust_app_parse_args(argc, argv, &opts, "b:q:o:w:M:t:j:S:z", g_long, parse_opt, usage,
				&g_run.cfg);
	if (rc == 1) {
		return 0;
	}
	if (rc != 0) {
		return 2;
	}
	if (g_run.cfg.bdev_name == NULL) {
		fprintf(stderr, "ustor-perf: -b BDEV is required; see '%s --help'\n", argv[0]);
		return 2;
	}
	if (g_run.wait_rpc && opts.rpc_addr == NULL) {
		fprintf(stderr, "ustor-perf: -z needs an RPC socket (-r PATH)\n");
		return 2;
	}
	if (opts.config_file == NULL) {
		fprintf(stderr, "ustor-perf: -c CONFIG is required (it creates the bdevs); see "
			"'%s --help'\n", argv[0]);
		return 2;
	}
	rc = ust_app_start(&opts, perf_start, &g_run);
	for (uint32_t i = 0; i < g_run.job_count; i++) {
		perf_job_free(g_run.jobs[i]);
	}
	if (rc < 0) {
		fprintf(stderr, "ustor-perf: start-up failed (%s): see the messages above\n",
			strerror(-rc));
		return 1;
	}
	return rc == 0 ? 0 : 1;
}
