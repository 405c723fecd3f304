/*
 * ustor-mount: mount a blobfs file system through FUSE.
 *
 *   ustor-mount [-f] [--format] --image FILE [--size 8G] [-o OPTS] MOUNTPOINT
 *   ustor-mount [-f] [--format] -c CONFIG --bdev NAME [-o OPTS] MOUNTPOINT
 *
 * --image puts a file-backed bdev (io_uring, or libaio where io_uring is
 * unavailable) on FILE; with --format a missing FILE is created sparse with
 * --size bytes and the file system is formatted (--cluster-size and
 * --max-inodes shape it, --prealloc-md writes its whole metadata region
 * at once; all three are refused without --format: they could not
 * change an existing file system). -c replays a JSON config (any bdev) and
 * --bdev names the bdev to mount.
 *
 * Guarantees:
 *  - Without -f the program forks before the reactors start, and the parent
 *    exits only once the mount is live (status 0) or the child failed
 *    (status 1, the reason on stderr), so `ustor-mount ... && ls MNT` works.
 *  - Unmounting (fusermount3 -u MOUNTPOINT), SIGINT or SIGTERM all end in a
 *    clean blobfs unmount (the blobstore unloaded) and exit status 0; any
 *    failure on the way makes the status 1. Bad arguments exit with 2.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "ustor/app.h"
#include "ustor/fuse.h"
#include "ustor/log.h"
#include "ustor/rpc.h"

#define BDEV_NAME "ustor_mount0"

enum {
	OPT_FORMAT = 0x2000,
	OPT_IMAGE,
	OPT_SIZE,
	OPT_BDEV,
	OPT_CLUSTER_SIZE,
	OPT_MAX_INODES,
	OPT_PREALLOC_MD,
};

static struct {
	bool foreground;
	bool format;
	char *image;
	uint64_t size;
	char *bdev;
	char *options;
	uint32_t cluster_size;
	uint32_t max_inodes;
	bool prealloc_md;
	char mountpoint[PATH_MAX];
	int status_fd; /* daemon: write end of the pipe to the waiting parent; -1 otherwise */
	int rc;
	bool mounted;
} g_mnt = {
	.size = 8ULL << 30,
	.status_fd = -1,
};

static const struct option g_long[] = {
	{"foreground", no_argument, NULL, 'f'},
	{"options", required_argument, NULL, 'o'},
	{"format", no_argument, NULL, OPT_FORMAT},
	{"image", required_argument, NULL, OPT_IMAGE},
	{"size", required_argument, NULL, OPT_SIZE},
	{"bdev", required_argument, NULL, OPT_BDEV},
	{"cluster-size", required_argument, NULL, OPT_CLUSTER_SIZE},
	{"max-inodes", required_argument, NULL, OPT_MAX_INODES},
	{"prealloc-md", no_argument, NULL, OPT_PREALLOC_MD},
	{NULL, 0, NULL, 0},
};

static void usage(void)
{
	printf("Usage: ustor-mount [-f] [--format] --image FILE [--size SIZE] [-o OPTS] MOUNTPOINT\n"
	       "       ustor-mount [-f] [--format] -c CONFIG --bdev NAME [-o OPTS] MOUNTPOINT\n"
	       "Mount a blobfs file system through FUSE.\n\n"
	       " -f, --foreground        stay in the foreground (default: daemonize once mounted)\n"
	       "     --format            format the file system first (creates a missing image)\n"
	       "     --image FILE        file-backed bdev on FILE\n"
	       "     --size SIZE         size of a new image: bytes or K/M/G/T (default 8G)\n"
	       "     --bdev NAME         mount the bdev NAME (from -c CONFIG)\n"
	       "     --cluster-size N    cluster size when formatting (default 64K)\n"
	       "     --max-inodes N      inodes when formatting, two of them the file system's\n"
	       "                         own; at most 16M, 12 KiB of metadata each\n"
	       "                         (default: one per 4 clusters, 64 to 1M)\n"
	       "     --prealloc-md       when formatting, write the whole metadata region\n"
	       "                         (12 KiB per inode) so a sparse image holds it now\n"
	       " -o, --options OPTS      mount options: allow_other, default_permissions, ro,\n"
	       "                         attr_timeout=S, entry_timeout=S, negative_timeout=S,\n"
	       "                         writeback_cache, sync_interval_ms=N, ... (repeatable)\n"
	       "The RPC server is off unless -r is given.\n\n");
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || end == s) {
		return -EINVAL;
	}
	switch (*end) {
	case 'k': case 'K': mul = 1ULL << 10; end++; break;
	case 'm': case 'M': mul = 1ULL << 20; end++; break;
	case 'g': case 'G': mul = 1ULL << 30; end++; break;
	case 't': case 'T': mul = 1ULL << 40; end++; break;
	default: break;
	}
	if (*end != '\0' || v == 0 || v > UINT64_MAX / mul) {
		return -EINVAL;
	}
	*out = v * mul;
	return 0;
}

static int append_options(const char *o)
{
	size_t a = g_mnt.options != NULL ? strlen(g_mnt.options) : 0;
	char *n = realloc(g_mnt.options, a + strlen(o) + 2);

	if (n == NULL) {
		return -ENOMEM;
	}
	if (a > 0) {
		n[a++] = ',';
	}
	strcpy(n + a, o);
	g_mnt.options = n;
	return 0;
}

static int parse_opt(int ch, char *arg, void *ctx)
{
	uint64_t v;

	switch (ch) {
	case 'f':
		g_mnt.foreground = true;
		return 0;
	case 'o':
		return append_options(arg);
	case OPT_FORMAT:
		g_mnt.format = true;
		return 0;
	case OPT_IMAGE:
		free(g_mnt.image);
		g_mnt.image = strdup(arg);
		return g_mnt.image != NULL ? 0 : -ENOMEM;
	case OPT_SIZE:
		if (parse_size(arg, &g_mnt.size) != 0 || g_mnt.size % 4096 != 0) {
			fprintf(stderr, "ustor-mount: bad --size '%s' (a multiple of 4 KiB)\n", arg);
			return -EINVAL;
		}
		return 0;
	case OPT_BDEV:
		free(g_mnt.bdev);
		g_mnt.bdev = strdup(arg);
		return g_mnt.bdev != NULL ? 0 : -ENOMEM;
	case OPT_CLUSTER_SIZE:
		if (parse_size(arg, &v) != 0 || v > UINT32_MAX) {
			fprintf(stderr, "ustor-mount: bad --cluster-size '%s'\n", arg);
			return -EINVAL;
		}
		g_mnt.cluster_size = (uint32_t)v;
		return 0;
	case OPT_MAX_INODES:
		if (parse_size(arg, &v) != 0 || v > UST_FUSE_MAX_INODES) {
			fprintf(stderr, "ustor-mount: bad --max-inodes '%s' (1 to %u)\n", arg,
				UST_FUSE_MAX_INODES);
			return -EINVAL;
		}
		g_mnt.max_inodes = (uint32_t)v;
		return 0;
	case OPT_PREALLOC_MD:
		g_mnt.prealloc_md = true;
		return 0;
	default:
		return -EINVAL;
	}
}

/* Before anything starts: a missing image is created sparse (only with --format). */
static int prepare_image(void)
{
	char path[PATH_MAX];
	struct stat st;
	int fd;

	if (stat(g_mnt.image, &st) == 0) {
		if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
			fprintf(stderr, "ustor-mount: %s is not a file or block device\n", g_mnt.image);
			return -EINVAL;
		}
	} else if (errno != ENOENT) {
		fprintf(stderr, "ustor-mount: %s: %s\n", g_mnt.image, strerror(errno));
		return -errno;
	} else if (!g_mnt.format) {
		fprintf(stderr, "ustor-mount: %s does not exist (--format creates it)\n",
			g_mnt.image);
		return -ENOENT;
	} else {
		fd = open(g_mnt.image, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || ftruncate(fd, (off_t)g_mnt.size) != 0) {
			fprintf(stderr, "ustor-mount: cannot create %s: %s\n", g_mnt.image,
				strerror(errno));
			if (fd >= 0) {
				close(fd);
				unlink(g_mnt.image);
			}
			return -EIO;
		}
		close(fd);
	}
	if (realpath(g_mnt.image, path) == NULL) {
		fprintf(stderr, "ustor-mount: %s: %s\n", g_mnt.image, strerror(errno));
		return -errno;
	}
	free(g_mnt.image);
	g_mnt.image = strdup(path);
	return g_mnt.image != NULL ? 0 : -ENOMEM;
}

/* Tell the waiting parent how start-up went (daemon mode), once. */
static void report_status(int status)
{
	unsigned char b = (unsigned char)status;
	int fd = g_mnt.status_fd, nul;

	if (fd < 0) {
		return;
	}
	g_mnt.status_fd = -1;
	if (write(fd, &b, 1) != 1) {
		/* the parent is gone: nobody to tell */
	}
	close(fd);
	if (status == 0) {
		/* Detached from the terminal from now on; logs keep going to syslog. */
		nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (nul >= 0) {
			dup2(nul, STDIN_FILENO);
			dup2(nul, STDOUT_FILENO);
			dup2(nul, STDERR_FILENO);
			close(nul);
		}
	}
}

static void mount_ended(void *arg, struct ust_fuse_mount *m, int rc)
{
	g_mnt.rc = rc == 0 ? 0 : 1;
	ust_app_stop(g_mnt.rc);
}

static void mount_done(void *arg, struct ust_fuse_mount *m, int rc)
{
	if (rc != 0) {
		fprintf(stderr, "ustor-mount: cannot mount %s: %s\n", g_mnt.mountpoint,
			strerror(-rc));
		g_mnt.rc = 1;
		report_status(1);
		ust_app_stop(1);
		return;
	}
	g_mnt.mounted = true;
	report_status(0);
}

static void do_mount(const char *bdev_name)
{
	struct ust_fuse_mount_opts opts;

	ust_fuse_mount_opts_init(&opts);
	opts.bdev_name = bdev_name;
	opts.mountpoint = g_mnt.mountpoint;
	opts.options = g_mnt.options;
	opts.format = g_mnt.format ? UST_FUSE_FORMAT_ALWAYS : UST_FUSE_FORMAT_NEVER;
	opts.cluster_size = g_mnt.cluster_size;
	opts.max_inodes = g_mnt.max_inodes;
	opts.prealloc_md = g_mnt.prealloc_md;
	opts.ended_cb = mount_ended;
	ust_fuse_mount(&opts, mount_done, NULL);
}

static bool response_ok(json_t *response, const char *method)
{
	json_t *err = json_object_get(response, "error");
	const char *msg;

	if (err == NULL) {
		return true;
	}
	msg = json_string_value(json_object_get(err, "message"));
	UST_NOTICELOG("%s failed: %s\n", method, msg != NULL ? msg : "(no message)");
	return false;
}

static void aio_created(void *ctx, json_t *response)
{
	if (!response_ok(response, "bdev_aio_create")) {
		fprintf(stderr, "ustor-mount: cannot open %s as a bdev\n", g_mnt.image);
		g_mnt.rc = 1;
		report_status(1);
		ust_app_stop(1);
		return;
	}
	do_mount(BDEV_NAME);
}

static json_t *file_bdev_params(void)
{
	return json_pack("{s:s, s:s, s:i}", "name", BDEV_NAME, "filename", g_mnt.image,
			 "block_size", 4096);
}

static void uring_created(void *ctx, json_t *response)
{
	json_t *params;
	int rc;

	if (response_ok(response, "bdev_uring_create")) {
		do_mount(BDEV_NAME);
		return;
	}
	/* No io_uring here (or it is disabled): libaio does the same job. */
	params = file_bdev_params();
	rc = params == NULL ? -ENOMEM : ust_rpc_call_local("bdev_aio_create", params,
							  aio_created, NULL);
	json_decref(params);
	if (rc != 0) {
		fprintf(stderr, "ustor-mount: bdev_aio_create: %s\n", strerror(-rc));
		g_mnt.rc = 1;
		report_status(1);
		ust_app_stop(1);
	}
}

static void started(void *ctx)
{
	json_t *params;
	int rc;

	if (g_mnt.image == NULL) {
		do_mount(g_mnt.bdev);
		return;
	}
	params = file_bdev_params();
	rc = params == NULL ? -ENOMEM : ust_rpc_call_local("bdev_uring_create", params,
							  uring_created, NULL);
	json_decref(params);
	if (rc != 0) {
		fprintf(stderr, "ustor-mount: bdev_uring_create: %s\n", strerror(-rc));
		g_mnt.rc = 1;
		report_status(1);
		ust_app_stop(1);
	}
}

/* The parent of a daemon: wait for the child's verdict. */
static int wait_for_child(int fd)
{
	unsigned char b;
	ssize_t n;

	do {
		n = read(fd, &b, 1);
	} while (n < 0 && errno == EINTR);
	close(fd);
	return n == 1 && b == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

int main(int argc, char **argv)
{
	struct ust_app_opts opts;
	struct stat st;
	const char *mp;
	int fds[2];
	pid_t pid;
	int rc;

	ust_app_opts_init(&opts, "ustor-mount");
	opts.rpc_addr = NULL; /* several mounts side by side: no socket unless -r */
	if (argc < 2 || argv[argc - 1][0] == '-') {
		for (rc = 1; rc < argc; rc++) {
			if (strcmp(argv[rc], "-h") == 0 || strcmp(argv[rc], "--help") == 0) {
				usage();
				ust_app_usage();
				return EXIT_SUCCESS;
			}
		}
		fprintf(stderr, "ustor-mount: MOUNTPOINT missing; see 'ustor-mount --help'\n");
		return 2;
	}
	mp = argv[argc - 1];
	rc = ust_app_parse_args(argc - 1, argv, &opts, "fo:", g_long, parse_opt, usage, NULL);
	if (rc == 1) {
		return EXIT_SUCCESS;
	}
	if (rc != 0) {
		return 2;
	}
	if ((g_mnt.image == NULL) == (g_mnt.bdev == NULL)) {
		fprintf(stderr, "ustor-mount: give either --image FILE or -c CONFIG --bdev NAME\n");
		return 2;
	}
	if (!g_mnt.format && (g_mnt.cluster_size != 0 || g_mnt.max_inodes != 0 || g_mnt.prealloc_md)) {
		fprintf(stderr, "ustor-mount: --cluster-size, --max-inodes and --prealloc-md need --format\n");
		return 2;
	}
	if (g_mnt.bdev != NULL && opts.config_file == NULL) {
		fprintf(stderr, "ustor-mount: --bdev needs -c CONFIG to create the bdev\n");
		return 2;
	}
	if (realpath(mp, g_mnt.mountpoint) == NULL || stat(g_mnt.mountpoint, &st) != 0 ||
	    !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "ustor-mount: mountpoint %s is not a directory\n", mp);
		return 2;
	}
	if (g_mnt.image != NULL && prepare_image() != 0) {
		return EXIT_FAILURE;
	}
	if (!g_mnt.foreground) {
		if (pipe2(fds, O_CLOEXEC) != 0) {
			perror("ustor-mount: pipe");
			return EXIT_FAILURE;
		}
		pid = fork();
		if (pid < 0) {
			perror("ustor-mount: fork");
			return EXIT_FAILURE;
		}
		if (pid > 0) {
			close(fds[1]);
			return wait_for_child(fds[0]);
		}
		close(fds[0]);
		g_mnt.status_fd = fds[1];
		/* The working directory stays: a config may name files relative to it. */
		setsid();
	}
	rc = ust_app_start(&opts, started, NULL);
	if (rc != 0 || g_mnt.rc != 0) {
		report_status(1);
	}
	free(g_mnt.image);
	free(g_mnt.bdev);
	free(g_mnt.options);
	if (rc < 0) {
		return EXIT_FAILURE;
	}
	return rc == 0 && g_mnt.rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
