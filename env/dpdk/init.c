/*
 * DPDK environment: start-up and shutdown of DPDK's EAL.
 *
 * ust_env_init() turns ust_env_opts into EAL arguments and calls
 * rte_eal_init() once per process. It guarantees:
 *  - the core mask is checked here first, so a typo is a clear -EINVAL and
 *    not an EAL failure that leaves the process unable to retry;
 *  - each process gets its own file prefix ("ustor_<pid>" by default) and no
 *    shared config, so several ustor processes run side by side and nothing
 *    is left in hugetlbfs after exit;
 *  - when hugepages cannot be used (none free, fewer than asked for, no
 *    writable hugetlbfs mount) it runs with --no-huge and IOVA = VA and
 *    prints exactly one warning line saying why and how to fix it;
 *  - DPDK's ring mempool driver is present, or init fails with a message.
 * ust_env_fini() calls rte_eal_cleanup(); EAL's runtime directory is removed
 * as soon as init succeeds, so not even a killed process leaves files behind.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mempool.h>

#include "env_internal.h"
#include "ustor/env.h"

/* Enough for tests and benchmarks; EAL maps it lazily (RSS grows on use). */
#define NO_HUGE_DEFAULT_MEM_MB 1024
#define PREFIX_MAX 64
#define NAME_MAX_LEN 64
#define MAX_EAL_ARGS 24
/* Room for the longest argument: every core of the mask as a decimal list. */
#define ARG_LEN (UST_ENV_MAX_CORES * 4 + 16)
#define CORE_WORDS (UST_ENV_MAX_CORES / 64)

enum env_state {
	ENV_NOT_STARTED,
	ENV_RUNNING,
	ENV_FINISHED, /* EAL cannot be initialised twice in one process */
};

static pthread_mutex_t g_init_lock = PTHREAD_MUTEX_INITIALIZER;
static enum env_state g_state = ENV_NOT_STARTED;
static bool g_no_huge;
static char g_file_prefix[PREFIX_MAX];

struct core_set {
	uint64_t bits[CORE_WORDS];
};

struct eal_args {
	int argc;
	char *argv[MAX_EAL_ARGS + 1];
	char buf[MAX_EAL_ARGS][ARG_LEN];
};

bool ust_env_dpdk_running(void)
{
	return __atomic_load_n(&g_state, __ATOMIC_ACQUIRE) == ENV_RUNNING;
}

void ust_env_opts_init(struct ust_env_opts *opts)
{
	if (opts == NULL)
		return;
	memset(opts, 0, sizeof(*opts));
	opts->name = "ustor";
	opts->main_core = -1;
}

/* ---- core mask ------------------------------------------------------------ */

static void core_set_add(struct core_set *set, unsigned int core)
{
	set->bits[core / 64] |= 1ULL << (core % 64);
}

static bool core_set_has(const struct core_set *set, unsigned int core)
{
	return core < UST_ENV_MAX_CORES && (set->bits[core / 64] >> (core % 64)) & 1;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "0x3" or "3": hexadecimal, lowest bit is core 0. */
static int parse_hex_mask(const char *str, struct core_set *set)
{
	size_t len, i;

	if (str[0] == '0' && (str[1] == 'x' || str[1] == 'X'))
		str += 2;
	len = strlen(str);
	if (len == 0)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		int v = hex_digit(str[len - 1 - i]);
		unsigned int b;

		if (v < 0)
			return -EINVAL;
		for (b = 0; b < 4; b++) {
			if (!((v >> b) & 1))
				continue;
			if (i * 4 + b >= UST_ENV_MAX_CORES)
				return -EINVAL;
			core_set_add(set, (unsigned int)(i * 4 + b));
		}
	}
	return 0;
}

static int parse_core_number(const char **p, unsigned int *core)
{
	char *end;
	unsigned long v;

	if (**p < '0' || **p > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(*p, &end, 10);
	if (errno != 0 || v >= UST_ENV_MAX_CORES)
		return -EINVAL;
	*p = end;
	*core = (unsigned int)v;
	return 0;
}

/* "[0-3,6]": decimal cores and ranges. */
static int parse_core_list(const char *str, struct core_set *set)
{
	const char *p = str + 1;
	unsigned int lo, hi, c;

	for (;;) {
		if (parse_core_number(&p, &lo) != 0)
			return -EINVAL;
		hi = lo;
		if (*p == '-') {
			p++;
			if (parse_core_number(&p, &hi) != 0 || hi < lo)
				return -EINVAL;
		}
		for (c = lo; c <= hi; c++)
			core_set_add(set, c);
		if (*p == ',') {
			p++;
			continue;
		}
		break;
	}
	return (p[0] == ']' && p[1] == '\0') ? 0 : -EINVAL;
}

static int parse_core_mask(const char *str, struct core_set *set)
{
	unsigned int i;
	int rc;

	memset(set, 0, sizeof(*set));
	rc = str[0] == '[' ? parse_core_list(str, set) : parse_hex_mask(str, set);
	if (rc != 0)
		return rc;
	for (i = 0; i < CORE_WORDS; i++) {
		if (set->bits[i] != 0)
			return 0;
	}
	return -EINVAL;
}

/*
 * EAL pins one thread per core; a core this process may not run on (taskset,
 * cgroup cpuset) or beyond DPDK's lcore limit would fail deep inside EAL.
 */
static int check_cores_usable(const struct core_set *set)
{
	cpu_set_t allowed;
	unsigned int c;

	if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0)
		CPU_ZERO(&allowed);
	for (c = 0; c < UST_ENV_MAX_CORES; c++) {
		if (!core_set_has(set, c))
			continue;
		if (c >= RTE_MAX_LCORE) {
			fprintf(stderr, "ustor: core %u is above DPDK's limit of %d cores\n", c,
				RTE_MAX_LCORE - 1);
			return -EINVAL;
		}
		if (c >= CPU_SETSIZE || !CPU_ISSET(c, &allowed)) {
			fprintf(stderr, "ustor: core %u is not available to this process\n", c);
			return -EINVAL;
		}
	}
	return 0;
}

static unsigned int lowest_core(const struct core_set *set)
{
	unsigned int c;

	for (c = 0; c < UST_ENV_MAX_CORES; c++) {
		if (core_set_has(set, c))
			break;
	}
	return c;
}

/* ---- EAL arguments ---------------------------------------------------------- */

static void add_arg(struct eal_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add_arg(struct eal_args *a, const char *fmt, ...)
{
	va_list ap;

	/* Callers add a fixed, small number of arguments: this cannot overflow. */
	va_start(ap, fmt);
	vsnprintf(a->buf[a->argc], ARG_LEN, fmt, ap);
	va_end(ap);
	a->argv[a->argc] = a->buf[a->argc];
	a->argc++;
	a->argv[a->argc] = NULL;
}

/* EAL's -l takes the cores as a decimal list, whichever form the user wrote. */
static void format_lcore_list(const struct core_set *set, char *buf, size_t len)
{
	size_t off = 0;
	unsigned int c;

	buf[0] = '\0';
	for (c = 0; c < UST_ENV_MAX_CORES && off < len; c++) {
		if (core_set_has(set, c))
			off += (size_t)snprintf(buf + off, len - off, "%s%u", off ? "," : "", c);
	}
}

static void build_eal_args(struct eal_args *a, const struct ust_env_opts *opts,
			   const struct core_set *cores, unsigned int main_core, bool no_huge)
{
	char lcores[ARG_LEN];
	int mem_mb = opts->mem_size_mb;

	a->argc = 0;
	add_arg(a, "%s", opts->name != NULL ? opts->name : "ustor");
	format_lcore_list(cores, lcores, sizeof(lcores));
	add_arg(a, "-l");
	add_arg(a, "%s", lcores);
	add_arg(a, "--main-lcore=%u", main_core);
	add_arg(a, "--file-prefix=%s", g_file_prefix);
	if (no_huge) {
		/* --in-memory needs hugepages; --no-shconf keeps files out of /var/run. */
		add_arg(a, "--no-huge");
		add_arg(a, "--iova-mode=va");
		add_arg(a, "--no-shconf");
		if (mem_mb == 0)
			mem_mb = NO_HUGE_DEFAULT_MEM_MB;
	} else {
		add_arg(a, "--in-memory");
	}
	if (mem_mb > 0)
		add_arg(a, "-m%d", mem_mb);
	if (!opts->pci)
		add_arg(a, "--no-pci");
	add_arg(a, "--no-telemetry");
	if (opts->quiet)
		add_arg(a, "--log-level=warning");
}

/* ---- hugepages ---------------------------------------------------------------- */

/* The size of hugepages mounted without a pagesize= option. */
static uint64_t default_hugepage_size(void)
{
	char line[256];
	unsigned long kb = 0;
	FILE *f = fopen("/proc/meminfo", "r");

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "Hugepagesize: %lu kB", &kb) == 1)
			break;
	}
	fclose(f);
	return (uint64_t)kb * 1024;
}

/* "pagesize=2M" / "pagesize=1G" in the mount options; else the default size. */
static uint64_t mount_page_size(const char *options, uint64_t dflt)
{
	const char *p = strstr(options, "pagesize=");
	char *end;
	unsigned long long v;

	if (p == NULL)
		return dflt;
	v = strtoull(p + strlen("pagesize="), &end, 10);
	switch (*end) {
	case 'G': case 'g': return v << 30;
	case 'M': case 'm': return v << 20;
	case 'K': case 'k': return v << 10;
	default: return v;
	}
}

static uint64_t free_hugepages_of_size(uint64_t page_size)
{
	char path[128];
	unsigned long long n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%llukB/free_hugepages",
		 (unsigned long long)(page_size >> 10));
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	if (fscanf(f, "%llu", &n) != 1)
		n = 0;
	fclose(f);
	return n;
}

#define MAX_PAGE_SIZES 8

struct hugepage_info {
	uint64_t free_bytes;         /* free pages of every size */
	uint64_t usable_free_bytes;  /* free pages of sizes with a writable mount */
	bool mounted;                /* some hugetlbfs mount is writable */
};

static uint64_t all_free_hugepage_bytes(void)
{
	uint64_t total = 0;
	unsigned long long kb;
	struct dirent *d;
	DIR *dir = opendir("/sys/kernel/mm/hugepages");

	if (dir == NULL)
		return 0;
	while ((d = readdir(dir)) != NULL) {
		if (sscanf(d->d_name, "hugepages-%llukB", &kb) == 1)
			total += free_hugepages_of_size(kb << 10) * (kb << 10);
	}
	closedir(dir);
	return total;
}

static void probe_hugepages(struct hugepage_info *info)
{
	uint64_t sizes[MAX_PAGE_SIZES], dflt = default_hugepage_size();
	char dev[256], dir[PATH_MAX], type[64], options[512];
	unsigned int nsizes = 0, i;
	FILE *f;

	memset(info, 0, sizeof(*info));
	info->free_bytes = all_free_hugepage_bytes();
	f = fopen("/proc/mounts", "r");
	if (f == NULL)
		return;
	while (fscanf(f, "%255s %4095s %63s %511s %*d %*d", dev, dir, type, options) == 4) {
		uint64_t size;

		if (strcmp(type, "hugetlbfs") != 0 || access(dir, R_OK | W_OK | X_OK) != 0)
			continue;
		info->mounted = true;
		size = mount_page_size(options, dflt);
		/* Several mounts of one size share the same free pages: count once. */
		for (i = 0; i < nsizes && sizes[i] != size; i++)
			;
		if (i < nsizes || nsizes == MAX_PAGE_SIZES || size == 0)
			continue;
		sizes[nsizes++] = size;
		info->usable_free_bytes += free_hugepages_of_size(size) * size;
	}
	fclose(f);
}

/* Decide on --no-huge; when it is a fallback, say why in one line. */
static bool choose_no_huge(const struct ust_env_opts *opts)
{
	struct hugepage_info hp;
	char why[160];

	if (opts->no_huge)
		return true;
	probe_hugepages(&hp);
	if (hp.free_bytes == 0)
		snprintf(why, sizeof(why), "no free hugepages are reserved");
	else if (!hp.mounted)
		snprintf(why, sizeof(why), "hugetlbfs is not mounted (or not writable by us)");
	else if (hp.usable_free_bytes == 0)
		snprintf(why, sizeof(why), "no free hugepages of a size that hugetlbfs is mounted for");
	else if (opts->mem_size_mb > 0 && hp.usable_free_bytes < ((uint64_t)opts->mem_size_mb << 20))
		snprintf(why, sizeof(why), "only %llu MB of free hugepages for the %d MB asked for",
			 (unsigned long long)(hp.usable_free_bytes >> 20), opts->mem_size_mb);
	else
		return false;
	fprintf(stderr,
		"ustor: WARNING: %s; running with --no-huge (IOVA = VA, PCI devices cannot DMA). "
		"Reserve hugepages with scripts/setup.sh\n",
		why);
	return true;
}

/* ---- init / fini ----------------------------------------------------------------- */

static int check_opts(const struct ust_env_opts *opts, struct core_set *cores,
		      unsigned int *main_core)
{
	int rc;

	if (opts->mem_size_mb < 0)
		return -EINVAL;
	if (opts->file_prefix != NULL &&
	    (opts->file_prefix[0] == '\0' || strlen(opts->file_prefix) >= PREFIX_MAX - 1 ||
	     strchr(opts->file_prefix, '/') != NULL))
		return -EINVAL;
	if (opts->name != NULL && strlen(opts->name) >= NAME_MAX_LEN)
		return -EINVAL;
	rc = parse_core_mask(opts->core_mask != NULL ? opts->core_mask : "0x1", cores);
	if (rc != 0) {
		fprintf(stderr, "ustor: invalid core mask '%s' (use e.g. 0x3 or [0-1])\n",
			opts->core_mask);
		return rc;
	}
	rc = check_cores_usable(cores);
	if (rc != 0)
		return rc;
	if (opts->main_core < 0) {
		*main_core = lowest_core(cores);
	} else if (!core_set_has(cores, (unsigned int)opts->main_core)) {
		fprintf(stderr, "ustor: main core %d is not in the core mask\n", opts->main_core);
		return -EINVAL;
	} else {
		*main_core = (unsigned int)opts->main_core;
	}
	return 0;
}

static void set_file_prefix(const struct ust_env_opts *opts)
{
	if (opts->file_prefix != NULL)
		snprintf(g_file_prefix, sizeof(g_file_prefix), "%s", opts->file_prefix);
	else
		snprintf(g_file_prefix, sizeof(g_file_prefix), "ustor_%d", (int)getpid());
}

/* rte_mempool_create() needs DPDK's ring driver, which Debian ships as a plugin. */
static bool ring_mempool_ops_present(void)
{
	uint32_t i;

	for (i = 0; i < rte_mempool_ops_table.num_ops; i++) {
		if (strcmp(rte_mempool_ops_table.ops[i].name, "ring_mp_mc") == 0)
			return true;
	}
	return false;
}

/*
 * With --in-memory or --no-shconf EAL puts nothing in its runtime directory
 * (no config, no IPC socket, no telemetry) but creates it anyway. Removing it
 * right after init means even a killed process leaves nothing behind.
 */
static void remove_runtime_dir(void)
{
	const char *dir = rte_eal_get_runtime_dir();

	if (dir != NULL && dir[0] != '\0')
		rmdir(dir);
}

/* *eal_called tells the caller whether rte_eal_init() ran, even if it failed. */
static int start_eal(const struct ust_env_opts *opts, bool *eal_called)
{
	struct core_set cores;
	unsigned int main_core;
	/* Static: EAL may keep pointers into argv after init returns. */
	static struct eal_args args;
	bool no_huge;
	int rc;

	rc = check_opts(opts, &cores, &main_core);
	if (rc != 0)
		return rc;
	set_file_prefix(opts);
	no_huge = choose_no_huge(opts);

	build_eal_args(&args, opts, &cores, main_core, no_huge);
	*eal_called = true;
	rc = rte_eal_init(args.argc, args.argv);
	if (rc < 0) {
		rc = rte_errno > 0 ? -rte_errno : -EIO;
		fprintf(stderr, "ustor: DPDK EAL initialisation failed: %s\n", rte_strerror(-rc));
		return rc;
	}
	if (!ring_mempool_ops_present()) {
		fprintf(stderr, "ustor: DPDK's ring mempool driver (librte_mempool_ring) "
				"is not loaded; install DPDK's drivers package\n");
		rte_eal_cleanup();
		remove_runtime_dir();
		return -ENOENT;
	}
	remove_runtime_dir();
	g_no_huge = no_huge;
	return 0;
}

int ust_env_init(const struct ust_env_opts *user_opts)
{
	struct ust_env_opts opts;
	bool eal_called = false;
	int rc;

	if (user_opts != NULL)
		opts = *user_opts;
	else
		ust_env_opts_init(&opts);

	pthread_mutex_lock(&g_init_lock);
	if (g_state != ENV_NOT_STARTED) {
		rc = -EALREADY;
	} else {
		rc = start_eal(&opts, &eal_called);
		if (rc == 0)
			__atomic_store_n(&g_state, ENV_RUNNING, __ATOMIC_RELEASE);
		else if (eal_called)
			/* DPDK forbids a second rte_eal_init() in one process. */
			g_state = ENV_FINISHED;
	}
	pthread_mutex_unlock(&g_init_lock);
	return rc;
}

void ust_env_fini(void)
{
	pthread_mutex_lock(&g_init_lock);
	if (g_state == ENV_RUNNING) {
		__atomic_store_n(&g_state, ENV_FINISHED, __ATOMIC_RELEASE);
		rte_eal_cleanup();
	}
	pthread_mutex_unlock(&g_init_lock);
}

bool ust_env_no_huge(void)
{
	return g_no_huge;
}

const char *ust_env_get_file_prefix(void)
{
	pthread_mutex_lock(&g_init_lock);
	if (g_file_prefix[0] == '\0')
		snprintf(g_file_prefix, sizeof(g_file_prefix), "ustor_%d", (int)getpid());
	pthread_mutex_unlock(&g_init_lock);
	return g_file_prefix;
}
