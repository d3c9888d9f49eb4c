/*
 * Log lines: "tlspolicyd[PID]: LEVEL: message" on stderr, or syslog(3) with the daemon's
 * name. The caller escapes untrusted data; this module only refuses to let a message span
 * lines.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int threshold = LOG_INFO;
static int to_syslog;
static int json;
static int decisions = LOG_DEBUG;

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

void log_set_format(int use_json)
{
    json = use_json;
}

void log_set_decisions(int level)
{
    decisions = level;
}

int log_decisions(void)
{
    return decisions;
}

static const char *level_word(int level)
{
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].level == level)
            return names[i].word;
    return "info";
}

/* Append to a bounded line; output that does not fit is cut (the line stays one line). */
struct line {
    char buf[16384]; /* the longest answer text (4 KiB) escaped, and the other fields */
    size_t len;
};

static void add(struct line *l, const char *s, size_t n)
{
    if (n > sizeof(l->buf) - 1 - l->len)
        n = sizeof(l->buf) - 1 - l->len;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    l->buf[l->len] = '\0';
}

static void adds(struct line *l, const char *s)
{
    add(l, s, strlen(s));
}

/* RFC 8259 7: '"', '\\' and controls escaped; bytes above 0x7e too, so any input is JSON. */
static void add_json_string(struct line *l, const char *s)
{
    adds(l, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            add(l, esc, 2);
        } else if (c < 0x20 || c > 0x7e) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            adds(l, esc);
        } else {
            add(l, s, 1);
        }
    }
    adds(l, "\"");
}

/*
 * Text values: quoted when they hold a space, a quote or '=', with '"' escaped. Values are
 * escape_log() output already (a backslash there starts an escape, a client's own
 * backslash is doubled), so a backslash needs nothing more.
 */
static void add_text_value(struct line *l, const char *v)
{
    if (*v != '\0' && strpbrk(v, " \"=") == NULL) {
        adds(l, v);
        return;
    }
    adds(l, "\"");
    for (; *v; v++) {
        if (*v == '"')
            adds(l, "\\\"");
        else
            add(l, v, 1);
    }
    adds(l, "\"");
}

static void json_head(struct line *l, int level)
{
    struct timespec ts;
    struct tm tm;
    char t[64];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S", &tm);
    l->len = 0;
    l->buf[0] = '\0';
    adds(l, "{\"time\":\"");
    adds(l, t);
    snprintf(t, sizeof(t), ".%03ldZ\",\"level\":\"%s\",\"pid\":%ld", ts.tv_nsec / 1000000,
             level_word(level), (long)getpid());
    adds(l, t);
}

static void emit(int level, const char *line)
{
    if (to_syslog)
        syslog(level, "%s", line);
    else if (json)
        fprintf(stderr, "%s\n", line);
    else
        fprintf(stderr, "tlspolicyd[%ld]: %s: %s\n", (long)getpid(), level_word(level), line);
}

void log_msg(int level, const char *fmt, ...)
{
    char line[2048];
    va_list ap;

    if (level > threshold)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /*
     * A message is one line, whatever its arguments held, and no control byte (an escape
     * sequence in a file name, say) reaches a terminal or a log file.
     */
    for (char *p = line; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    if (json) {
        struct line l;

        json_head(&l, level);
        adds(&l, ",\"msg\":");
        add_json_string(&l, line);
        adds(&l, "}");
        emit(level, l.buf);
        return;
    }
    emit(level, line);
}

void log_fields(int level, const char *event, const char *const *kv, size_t n)
{
    struct line l;

    if (level > threshold)
        return;
    if (json) {
        json_head(&l, level);
        adds(&l, ",\"event\":");
        add_json_string(&l, event);
    } else {
        l.len = 0;
        l.buf[0] = '\0';
        adds(&l, event);
    }
    for (size_t i = 0; i + 1 < 2 * n; i += 2) {
        if (kv[i + 1] == NULL)
            continue;
        if (json) {
            adds(&l, ",");
            add_json_string(&l, kv[i]);
            adds(&l, ":");
            add_json_string(&l, kv[i + 1]);
        } else {
            adds(&l, " ");
            adds(&l, kv[i]);
            adds(&l, "=");
            add_text_value(&l, kv[i + 1]);
        }
    }
    if (json)
        adds(&l, "}");
    /* A value never breaks the line (text values come escaped, JSON escapes controls). */
    for (char *p = l.buf; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    emit(level, l.buf);
}
