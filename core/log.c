/*
 * Logging: levels, per-component debug flags, and the line format.
 *
 * Guarantees:
 *  - Every message is one line, "[YYYY-mm-dd HH:MM:SS.uuuuuu] file:LINE func:
 *    *LEVEL*: text", handed to the output in one write(2) (or one sink call),
 *    so lines from different OS threads never interleave.
 *  - Nothing is truncated: a message longer than the stack buffer is
 *    formatted into a heap buffer of the exact size.
 *  - Debug flags are registered from constructors, before main(), so this file
 *    keeps only statically initialised state and never allocates to register.
 *  - Safe from any OS thread. Levels, flags and the sink are read with
 *    relaxed atomics: a change becomes visible to other threads soon, not
 *    instantly, which is all a log switch needs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "ustor/log.h"

/* Most lines fit; longer ones go to the heap rather than being cut. */
#define LOG_LINE_STACK_SIZE 1024

typedef void (*log_sink_fn)(enum ust_log_level level, const char *msg);

static int g_print_level = UST_LOG_NOTICE;
static int g_syslog_level = UST_LOG_NOTICE;
static bool g_syslog_open;
static log_sink_fn g_sink;
/* Sorted by name; only written before main() or by the control path. */
static struct ust_log_flag *g_flags;

static const char *const g_level_names[] = {
	[UST_LOG_ERROR] = "ERROR",
	[UST_LOG_WARN] = "WARNING",
	[UST_LOG_NOTICE] = "NOTICE",
	[UST_LOG_INFO] = "INFO",
	[UST_LOG_DEBUG] = "DEBUG",
};

static const int g_syslog_prio[] = {
	[UST_LOG_ERROR] = LOG_ERR,
	[UST_LOG_WARN] = LOG_WARNING,
	[UST_LOG_NOTICE] = LOG_NOTICE,
	[UST_LOG_INFO] = LOG_INFO,
	[UST_LOG_DEBUG] = LOG_DEBUG,
};

static bool level_is_valid(enum ust_log_level level)
{
	return level >= UST_LOG_DISABLED && level <= UST_LOG_DEBUG;
}

void ust_log_set_print_level(enum ust_log_level level)
{
	if (!level_is_valid(level)) {
		return;
	}
	__atomic_store_n(&g_print_level, (int)level, __ATOMIC_RELAXED);
}

enum ust_log_level ust_log_get_print_level(void)
{
	return (enum ust_log_level)__atomic_load_n(&g_print_level, __ATOMIC_RELAXED);
}

void ust_log_set_level(enum ust_log_level level)
{
	if (!level_is_valid(level)) {
		return;
	}
	__atomic_store_n(&g_syslog_level, (int)level, __ATOMIC_RELAXED);
}

enum ust_log_level ust_log_get_level(void)
{
	return (enum ust_log_level)__atomic_load_n(&g_syslog_level, __ATOMIC_RELAXED);
}

void ust_log_open(const char *ident)
{
	openlog(ident, LOG_PID, LOG_DAEMON);
	__atomic_store_n(&g_syslog_open, true, __ATOMIC_RELEASE);
}

void ust_log_close(void)
{
	if (__atomic_exchange_n(&g_syslog_open, false, __ATOMIC_ACQ_REL)) {
		closelog();
	}
}

int ust_log_level_from_str(const char *str, enum ust_log_level *level)
{
	static const struct {
		const char *name;
		enum ust_log_level level;
	} names[] = {
		{"disabled", UST_LOG_DISABLED}, {"error", UST_LOG_ERROR},
		{"warning", UST_LOG_WARN},      {"warn", UST_LOG_WARN},
		{"notice", UST_LOG_NOTICE},     {"info", UST_LOG_INFO},
		{"debug", UST_LOG_DEBUG},
	};

	if (str == NULL || level == NULL) {
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(str, names[i].name) == 0) {
			*level = names[i].level;
			return 0;
		}
	}
	return -EINVAL;
}

const char *ust_log_level_to_str(enum ust_log_level level)
{
	if (level == UST_LOG_DISABLED) {
		return "DISABLED";
	}
	if (!level_is_valid(level)) {
		return NULL;
	}
	return g_level_names[level];
}

/* ---- flags -------------------------------------------------------------- */

static struct ust_log_flag *find_flag(const char *name)
{
	for (struct ust_log_flag *f = g_flags; f != NULL; f = f->next) {
		if (strcmp(f->name, name) == 0) {
			return f;
		}
	}
	return NULL;
}

void ust_log_register_flag(struct ust_log_flag *flag)
{
	struct ust_log_flag **pos;

	if (flag == NULL || flag->name == NULL || flag->name[0] == '\0' ||
	    strcmp(flag->name, "all") == 0) {
		ust_log(UST_LOG_ERROR, __FILE__, __LINE__, __func__,
			"refusing to register a log flag without a usable name\n");
		return;
	}
	if (find_flag(flag->name) != NULL) {
		/* Registering the same flag twice is harmless; two flags with one
		 * name would make set_flag ambiguous, so the second is refused. */
		if (find_flag(flag->name) != flag) {
			ust_log(UST_LOG_ERROR, __FILE__, __LINE__, __func__,
				"log flag '%s' registered twice\n", flag->name);
		}
		return;
	}
	for (pos = &g_flags; *pos != NULL; pos = &(*pos)->next) {
		if (strcmp((*pos)->name, flag->name) > 0) {
			break;
		}
	}
	flag->next = *pos;
	*pos = flag;
}

static int set_flag_state(const char *name, bool enabled)
{
	struct ust_log_flag *flag;

	if (name == NULL) {
		return -EINVAL;
	}
	if (strcmp(name, "all") == 0) {
		for (flag = g_flags; flag != NULL; flag = flag->next) {
			__atomic_store_n(&flag->enabled, enabled, __ATOMIC_RELAXED);
		}
		return 0;
	}
	flag = find_flag(name);
	if (flag == NULL) {
		return -EINVAL;
	}
	__atomic_store_n(&flag->enabled, enabled, __ATOMIC_RELAXED);
	return 0;
}

int ust_log_set_flag(const char *name)
{
	return set_flag_state(name, true);
}

int ust_log_clear_flag(const char *name)
{
	return set_flag_state(name, false);
}

bool ust_log_get_flag(const char *name)
{
	struct ust_log_flag *flag;

	if (name == NULL) {
		return false;
	}
	flag = find_flag(name);
	return flag != NULL && __atomic_load_n(&flag->enabled, __ATOMIC_RELAXED);
}

struct ust_log_flag *ust_log_get_next_flag(struct ust_log_flag *prev)
{
	return prev == NULL ? g_flags : prev->next;
}

void ust_log_set_sink(void (*fn)(enum ust_log_level level, const char *msg))
{
	__atomic_store_n(&g_sink, fn, __ATOMIC_RELEASE);
}

/* ---- output ------------------------------------------------------------- */

static size_t format_prefix(char *buf, size_t size, enum ust_log_level level, const char *file,
			    int line, const char *func)
{
	struct timeval tv;
	struct tm tm;
	char date[32];
	int n;

	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
	n = snprintf(buf, size, "[%s.%06ld] %s:%d %s: *%s*: ", date, (long)tv.tv_usec,
		     file ? file : "?", line, func ? func : "?", ust_log_level_to_str(level));
	if (n < 0) {
		return 0;
	}
	return (size_t)n;
}

/* Retry short writes: a long line to a pipe may be split by the kernel. */
static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

static void emit_line(enum ust_log_level level, const char *line, size_t len, size_t prefix_len,
		      bool to_print, bool to_syslog)
{
	log_sink_fn sink = __atomic_load_n(&g_sink, __ATOMIC_ACQUIRE);

	if (to_print) {
		if (sink != NULL) {
			sink(level, line);
		} else {
			write_all(STDERR_FILENO, line, len);
		}
	}
	if (to_syslog && sink == NULL) {
		/* syslog stamps its own time; drop ours and the newline. */
		syslog(g_syslog_prio[level], "%.*s", (int)(len - prefix_len - 1), line + prefix_len);
	}
}

/*
 * Formats prefix + message + '\n' into buf (stack) or, when it does not fit,
 * into a heap buffer of the exact size. Returns the buffer used (caller frees
 * it when != buf) and the length in *len, or NULL if memory ran out.
 */
static __attribute__((format(printf, 4, 0))) char *
format_line(char *buf, size_t size, size_t prefix_len, const char *fmt, va_list ap,
			 size_t *len)
{
	va_list ap2;
	int n;
	char *line = buf;

	va_copy(ap2, ap);
	n = vsnprintf(buf + prefix_len, size - prefix_len, fmt, ap2);
	va_end(ap2);
	if (n < 0) {
		return NULL;
	}
	if (prefix_len + (size_t)n + 2 > size) {
		line = malloc(prefix_len + (size_t)n + 2);
		if (line == NULL) {
			return NULL;
		}
		memcpy(line, buf, prefix_len);
		va_copy(ap2, ap);
		vsnprintf(line + prefix_len, (size_t)n + 1, fmt, ap2);
		va_end(ap2);
	}
	*len = prefix_len + (size_t)n;
	if (*len == prefix_len || line[*len - 1] != '\n') {
		line[(*len)++] = '\n';
	}
	line[*len] = '\0';
	return line;
}

void ust_vlog(enum ust_log_level level, const char *file, int line, const char *func,
	      const char *fmt, va_list ap)
{
	char buf[LOG_LINE_STACK_SIZE];
	size_t prefix_len, len;
	bool to_print, to_syslog;
	char *text;

	if (level < UST_LOG_ERROR || level > UST_LOG_DEBUG || fmt == NULL) {
		return;
	}
	to_print = (int)level <= __atomic_load_n(&g_print_level, __ATOMIC_RELAXED);
	to_syslog = __atomic_load_n(&g_syslog_open, __ATOMIC_ACQUIRE) &&
		    (int)level <= __atomic_load_n(&g_syslog_level, __ATOMIC_RELAXED);
	if (!to_print && !to_syslog) {
		return;
	}
	prefix_len = format_prefix(buf, sizeof(buf) / 2, level, file, line, func);
	if (prefix_len >= sizeof(buf) / 2) {
		/* An absurdly long file or function name: keep what fits. */
		prefix_len = sizeof(buf) / 2 - 1;
	}
	text = format_line(buf, sizeof(buf), prefix_len, fmt, ap, &len);
	if (text == NULL) {
		static const char oom[] = "log: out of memory formatting a message\n";

		write_all(STDERR_FILENO, oom, sizeof(oom) - 1);
		return;
	}
	emit_line(level, text, len, prefix_len, to_print, to_syslog);
	if (text != buf) {
		free(text);
	}
}

void ust_log(enum ust_log_level level, const char *file, int line, const char *func,
	     const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ust_vlog(level, file, line, func, fmt, ap);
	va_end(ap);
}
