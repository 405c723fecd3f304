/*
 * Logging with levels and per-component debug flags.
 *
 * UST_ERRLOG .. UST_INFOLOG print when their level is at or above the print
 * level. UST_DEBUGLOG(flag, ...) prints only when that component's flag is
 * set (log_set_flag RPC, or ust_log_set_flag()) and the level is debug.
 * Safe from any OS thread; each message is written with one write(2).
 */
#ifndef USTOR_LOG_H
#define USTOR_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

enum ust_log_level {
	UST_LOG_DISABLED = -1,
	UST_LOG_ERROR = 0,
	UST_LOG_WARN,
	UST_LOG_NOTICE,
	UST_LOG_INFO,
	UST_LOG_DEBUG,
};

struct ust_log_flag {
	const char *name;
	bool enabled;
	struct ust_log_flag *next;
};

void ust_log(enum ust_log_level level, const char *file, int line, const char *func,
	     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void ust_vlog(enum ust_log_level level, const char *file, int line, const char *func,
	      const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

/* Messages at or above the print level go to stderr (or the sink). */
void ust_log_set_print_level(enum ust_log_level level);
enum ust_log_level ust_log_get_print_level(void);
/*
 * Messages at or above the log level also go to syslog(3), once
 * ust_log_open() has been called (daemons); default UST_LOG_NOTICE.
 */
void ust_log_set_level(enum ust_log_level level);
enum ust_log_level ust_log_get_level(void);
void ust_log_open(const char *ident);
void ust_log_close(void);
/* "error", "warning", "notice", "info", "debug" (case-insensitive); -EINVAL. */
int ust_log_level_from_str(const char *str, enum ust_log_level *level);
const char *ust_log_level_to_str(enum ust_log_level level);

void ust_log_register_flag(struct ust_log_flag *flag);
/* "all" sets or clears every flag. -EINVAL for an unknown name. */
int ust_log_set_flag(const char *name);
int ust_log_clear_flag(const char *name);
bool ust_log_get_flag(const char *name);
/* Iterate registered flags in name order: NULL starts, NULL ends. */
struct ust_log_flag *ust_log_get_next_flag(struct ust_log_flag *prev);

/* Redirect output (default stderr); for tests. fn NULL restores it. */
void ust_log_set_sink(void (*fn)(enum ust_log_level level, const char *msg));

#define UST_ERRLOG(...) ust_log(UST_LOG_ERROR, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define UST_WARNLOG(...) ust_log(UST_LOG_WARN, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define UST_NOTICELOG(...) ust_log(UST_LOG_NOTICE, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define UST_INFOLOG(...) ust_log(UST_LOG_INFO, __FILE__, __LINE__, __func__, __VA_ARGS__)

/* Declares and registers the debug flag FLAG for the file that uses it. */
#define UST_LOG_REGISTER_COMPONENT(FLAG)                                                   \
	struct ust_log_flag ust_log_flag_##FLAG = {.name = #FLAG};                          \
	__attribute__((constructor)) static void ust_log_flag_register_##FLAG(void)         \
	{                                                                                   \
		ust_log_register_flag(&ust_log_flag_##FLAG);                                \
	}
#define UST_LOG_DECLARE_COMPONENT(FLAG) extern struct ust_log_flag ust_log_flag_##FLAG

#define UST_DEBUGLOG(FLAG, ...)                                                            \
	do {                                                                                \
		extern struct ust_log_flag ust_log_flag_##FLAG;                             \
		if (__builtin_expect(ust_log_flag_##FLAG.enabled, 0))                       \
			ust_log(UST_LOG_DEBUG, __FILE__, __LINE__, __func__, __VA_ARGS__);  \
	} while (0)

#ifdef __cplusplus
}
#endif

#endif
