/*
 * Logging: one line per event to stderr (the default, for systemd and foreground use) or
 * to syslog. Levels are syslog's. Untrusted text must go through escape_log() first.
 */
#ifndef DAEMON_LOG_H
#define DAEMON_LOG_H

#include <syslog.h>

/* log_open - set the threshold (LOG_ERR .. LOG_DEBUG) and the destination. */
void log_open(int level, int use_syslog);

/* log_level_parse - "error", "warning", "notice", "info", "debug" to a syslog level, or -1. */
int log_level_parse(const char *word);

/* log_enabled - would a message at this level be written? Lets callers skip formatting. */
int log_enabled(int level);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
