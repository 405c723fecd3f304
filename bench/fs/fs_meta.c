/*
 * bench/fs metadata rates: create, stat and unlink of N empty files in one
 * directory, timed phase by phase with the monotonic clock.
 *
 *   build/bench/fs [--step] DIR [N]   (N default 100000)
 *
 * Plain POSIX calls on whatever file system DIR is on (bench/fs/run.sh runs
 * it on the ustor FUSE mount and on ext4), so the figures compare file
 * systems, not programs: the loop adds well under a microsecond per call.
 *   create: open(O_CREAT | O_EXCL | O_WRONLY) then close, per file
 *   miss:   stat(2) of N names that do not exist (beside the N files), each
 *           expected to fail with ENOENT. On FUSE that is one LOOKUP round
 *           trip per name, answered at once: the floor under every call
 *           the kernel cannot answer from its caches (a create makes two,
 *           LOOKUP then CREATE)
 *   stat:   stat(2) of every file, in creation order
 *   unlink: unlink(2) of every file, in creation order
 * DIR must exist and is left empty. Prints one line per phase,
 * "PHASE N SECONDS OPS_PER_SECOND", and exits 0; any failed call is
 * reported with its errno and exits 1 after removing what it created.
 * --step: between phases, wait for a line on stdin before going on, so
 * that a driver can read the file system's counters phase by phase
 * (run.sh: the FUSE requests each phase cost).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NAME_LEN 32

enum phase { PHASE_CREATE, PHASE_MISS, PHASE_STAT, PHASE_UNLINK };

static const char *const g_phase_name[] = {"create", "miss", "stat", "unlink"};
static bool g_step; /* --step: wait for a line on stdin between phases */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* buf holds strlen(dir) + NAME_LEN bytes. The miss phase's names are never created. */
static void file_name(char *buf, const char *dir, enum phase p, unsigned long i)
{
	snprintf(buf, strlen(dir) + NAME_LEN, "%s/%c%08lu", dir, p == PHASE_MISS ? 'm' : 'f', i);
}

static int one_op(enum phase p, const char *path)
{
	struct stat st;
	int fd;

	switch (p) {
	case PHASE_CREATE:
		fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
		if (fd < 0) {
			return -errno;
		}
		return close(fd) == 0 ? 0 : -errno;
	case PHASE_MISS:
		if (stat(path, &st) == 0) {
			return -EEXIST;
		}
		return errno == ENOENT ? 0 : -errno;
	case PHASE_STAT:
		return stat(path, &st) == 0 ? 0 : -errno;
	case PHASE_UNLINK:
		return unlink(path) == 0 ? 0 : -errno;
	}
	return -EINVAL;
}

/* Runs phase p over files 0..n-1; returns how many succeeded before the first failure. */
static unsigned long run_phase(enum phase p, const char *dir, unsigned long n, char *path)
{
	unsigned long i;
	double t0, dt;
	int rc;

	t0 = now_s();
	for (i = 0; i < n; i++) {
		file_name(path, dir, p, i);
		rc = one_op(p, path);
		if (rc != 0) {
			fprintf(stderr, "fs: %s %s: %s\n", g_phase_name[p], path, strerror(-rc));
			return i;
		}
	}
	dt = now_s() - t0;
	printf("%s %lu %.3f %.0f\n", g_phase_name[p], n, dt, dt > 0 ? (double)n / dt : 0.0);
	fflush(stdout);
	return n;
}

/* Between two phases: with --step, wait for the driver's line; false if it went away. */
static bool step(void)
{
	if (g_step && getchar() == EOF) {
		fprintf(stderr, "fs: --step: stdin closed between phases\n");
		return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	unsigned long n = 100000, done, i;
	char *path, *end;

	if (argc > 1 && strcmp(argv[1], "--step") == 0) {
		g_step = true;
		argv++;
		argc--;
	}
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: %s [--step] DIR [N]\n", argv[0]);
		return 2;
	}
	if (argc == 3) {
		errno = 0;
		n = strtoul(argv[2], &end, 10);
		if (errno != 0 || *end != '\0' || n == 0 || n > 99999999) {
			fprintf(stderr, "fs: bad N '%s' (1..99999999)\n", argv[2]);
			return 2;
		}
	}
	path = malloc(strlen(argv[1]) + NAME_LEN);
	if (path == NULL) {
		fprintf(stderr, "fs: out of memory\n");
		return 1;
	}
	done = run_phase(PHASE_CREATE, argv[1], n, path);
	if (done == n && step() && run_phase(PHASE_MISS, argv[1], n, path) == n && step() &&
	    run_phase(PHASE_STAT, argv[1], n, path) == n && step() &&
	    run_phase(PHASE_UNLINK, argv[1], n, path) == n) {
		free(path);
		return 0;
	}
	/* Leave DIR as we found it, whatever failed. */
	for (i = 0; i < done; i++) {
		file_name(path, argv[1], PHASE_CREATE, i);
		unlink(path);
	}
	free(path);
	return 1;
}
