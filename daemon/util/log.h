/*
 * daemon/util/: what every folder uses. log, xalloc (allocation that aborts on failure),
 * metrics (counters and the exposition), waitlist.h and lru.h (intrusive lists).
 *
 * Logging: one line per event to stderr (the default, for systemd and foreground use) or
 * to syslog. Levels are syslog's. Untrusted text must go through escape_log() first.
 */
#ifndef DAEMON_LOG_H
#define DAEMON_LOG_H

#include <stddef.h>
#include <syslog.h>

/* log_open - set the threshold (LOG_ERR .. LOG_DEBUG) and the destination. */
void log_open(int level, int use_syslog);

/* log_level_parse - "error", "warning", "notice", "info", "debug" to a syslog level, or -1. */
int log_level_parse(const char *word);

/* log_enabled - would a message at this level be written? Lets callers skip formatting. */
int log_enabled(int level);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * log_set_format - 0: text lines "tlspolicyd[PID]: LEVEL: message"; 1: one JSON object per
 * line, {"time":..., "level":..., "pid":..., "msg":...} or, from log_fields(), the event
 * and its fields as members.
 */
void log_set_format(int json);

/* log_set_decisions, log_decisions - the level of the one line per lookup decision. */
void log_set_decisions(int level);
int log_decisions(void);

/*
 * log_fields - one event with n key/value pairs (kv[2i] the key, kv[2i+1] the value; NULL
 * values are left out). Text: "EVENT k=v k=\"v w\"", values with spaces, quotes or '='
 * quoted; JSON: members of the object. Values must already be escaped (escape_log()) where
 * they come from peers; the format's own quoting is added here.
 */
void log_fields(int level, const char *event, const char *const *kv, size_t n);

#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
