/*
 * Log lines: "tlspolicyd[PID]: LEVEL: message" on stderr, or syslog(3) with the daemon's
 * name. The caller escapes untrusted data; this module only refuses to let a message span
 * lines.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int threshold = LOG_INFO;
static int to_syslog;

static const struct {
    const char *word;
    int level;
} names[] = {
    {"error", LOG_ERR}, {"warning", LOG_WARNING}, {"notice", LOG_NOTICE},
    {"info", LOG_INFO}, {"debug", LOG_DEBUG},
};

void log_open(int level, int use_syslog)
{
    threshold = level;
    if (use_syslog && !to_syslog)
        openlog("tlspolicyd", LOG_PID | LOG_NDELAY, LOG_MAIL);
    else if (!use_syslog && to_syslog)
        closelog();
    to_syslog = use_syslog;
}

int log_level_parse(const char *word)
{
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(names[i].word, word) == 0)
            return names[i].level;
    return -1;
}

int log_enabled(int level)
{
    return level <= threshold;
}

void log_msg(int level, const char *fmt, ...)
{
    char line[2048];
    const char *word = "info";
    va_list ap;

    if (level > threshold)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* A message is one line, whatever its arguments held. */
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    if (to_syslog) {
        syslog(level, "%s", line);
        return;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].level == level)
            word = names[i].word;
    fprintf(stderr, "tlspolicyd[%ld]: %s: %s\n", (long)getpid(), word, line);
}
