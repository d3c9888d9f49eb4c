/*
 * The SMTP dialogue of one probe connection (RFC 5321 banner and EHLO, STARTTLS per RFC
 * 3207, EHLO again under TLS for REQUIRETLS, RFC 8689 4.2.1, then QUIT): a state machine over
 * replies parsed by proto/ehlo.c, moved on by the events of its transport (probe_int.h:
 * bytes in c->rx, the end of the stream, a failed write, the deadline). It does no I/O of
 * its own: it writes, waits and hangs up through probe_smtp.c (libuv TCP) and
 * probe_tls.c (mbedTLS), and hands its result to probe.c (probe_complete), so
 * tests/fuzz/fuzz_probe_dialogue.c can drive it with a byte stream and a fake transport.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "escape.h"
#include "probe_int.h"

/* After the result: how long the server gets to answer QUIT (RFC 5321 4.1.1.10). */
#define QUIT_GRACE_MS 2000u

void probe_why(struct conn *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->res.why, sizeof(c->res.why), fmt, ap);
    va_end(ap);
}

void probe_why_add(struct conn *c, const char *fmt, ...)
{
    size_t off = strlen(c->res.why);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->res.why + off, sizeof(c->res.why) - off, fmt, ap);
    va_end(ap);
}

/* The probe failed: the reason is in c->res.why; deliver and close. */
void probe_fail(struct conn *c)
{
    probe_complete(c);
    probe_smtp_close(c);
}

/* Where a probe was, for the reason it gives: "timed out ... waiting for the banner". */
const char *probe_step_name(enum conn_state st)
{
    static const char *const names[] = {
        [ST_CONNECT] = "connecting",
        [ST_BANNER] = "waiting for the banner",
        [ST_EHLO1] = "waiting for the EHLO reply",
        [ST_STARTTLS] = "waiting for the reply to STARTTLS",
        [ST_HANDSHAKE] = "in the TLS handshake",
        [ST_EHLO2] = "waiting for the EHLO reply after STARTTLS",
        [ST_QUIT] = "waiting for the reply to QUIT",
    };

    return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

/* Steps. */

/* Send one command line, in clear or under TLS. 0, or -1 with the reason set. */
static int send_cmd(struct conn *c, const char *line)
{
    size_t n = strlen(line);

    ehlo_reply_init(&c->reply);
    if (c->tls)
        return probe_tls_write(c, line, n);
    if (probe_smtp_write(c, line, n) < 0) {
        probe_why(c, "sending to %s failed %s", c->addr, probe_step_name(c->st));
        return -1;
    }
    return 0;
}

/* RFC 5321 4.1.1.1: EHLO with our name, in clear and again under TLS. */
static int send_ehlo(struct conn *c)
{
    char line[300];

    snprintf(line, sizeof(line), "EHLO %s\r\n", c->svc->helo_name);
    return send_cmd(c, line);
}

/* Steps. */

static void quit(struct conn *c)
{
    probe_complete(c);
    if (c->closing)
        return;
    c->st = ST_QUIT;
    if (send_cmd(c, "QUIT\r\n") < 0) {
        probe_smtp_close(c);
        return;
    }
    probe_smtp_wait(c, QUIT_GRACE_MS < c->svc->opts.timeout_ms ? QUIT_GRACE_MS
                                                               : c->svc->opts.timeout_ms);
}

/* The server answered QUIT: say goodbye to TLS, then to TCP. */
static void hang_up(struct conn *c)
{
    if (c->hungup)
        return;
    c->hungup = 1;
    probe_smtp_hang_up(c);
}

/* The server turned the step down (what: "EHLO refused"): say so with its reply, and QUIT. */
static void refused(struct conn *c, const char *what, const char *esc)
{
    probe_why(c, "%s: %d %s", what, c->reply.code, esc);
    quit(c);
}

/* RFC 5321 4.3.1: 220 is the greeting; 554 (or anything else) refuses the session. */
static void on_banner(struct conn *c, const char *esc)
{
    if (c->reply.code != 220) {
        refused(c, "banner refused the session", esc);
        return;
    }
    c->st = ST_EHLO1;
    if (send_ehlo(c) < 0)
        probe_fail(c);
}

static void on_ehlo1(struct conn *c, const char *esc)
{
    struct ehlo_caps caps;

    if (ehlo_caps_parse(&c->reply, &caps, NULL) != EHLO_OK) {
        refused(c, "EHLO refused", esc);
        return;
    }
    c->res.caps = caps.flags;
    /* RFC 3207 4: STARTTLS only when the server lists it. */
    if (!(caps.flags & EHLO_CAP_STARTTLS)) {
        probe_why(c, "STARTTLS not offered%s",
                  caps.flags & EHLO_CAP_REQUIRETLS ? " (REQUIRETLS listed in clear, ignored)" : "");
        quit(c);
        return;
    }
    c->res.starttls_offered = 1;
    c->st = ST_STARTTLS;
    if (send_cmd(c, "STARTTLS\r\n") < 0)
        probe_fail(c);
}

static void on_starttls(struct conn *c, const char *esc)
{
    if (c->reply.code != 220) {
        refused(c, "STARTTLS refused", esc);
        return;
    }
    /* RFC 3207 6 (CVE-2011-0411): anything sent in clear after the 220 is dropped. */
    c->rx_off = c->rx_len = 0;
    if (probe_tls_begin(c) < 0) {
        probe_why(c, "cannot set up TLS");
        probe_fail(c);
        return;
    }
    c->st = ST_HANDSHAKE;
}

/* After the TLS verdict in c->res.why: what the EHLO reply under TLS says. */
static void on_ehlo2(struct conn *c, const char *esc)
{
    struct ehlo_caps caps;

    if (ehlo_caps_parse(&c->reply, &caps, NULL) != EHLO_OK) {
        probe_why_add(c, "EHLO after STARTTLS refused: %d %s", c->reply.code, esc);
    } else {
        c->ehlo2_read = 1;
        c->res.caps = caps.flags;
        /* RFC 8689 4.2.1 step 5: REQUIRETLS in the EHLO reply after STARTTLS. */
        c->res.requiretls_advertised = (caps.flags & EHLO_CAP_REQUIRETLS) != 0;
        probe_why_add(c, "REQUIRETLS %s",
                      c->res.requiretls_advertised ? "advertised" : "not advertised");
    }
    quit(c);
}

static void on_quit(struct conn *c, const char *esc)
{
    (void)esc;
    hang_up(c);
}

/* What a reply means in each step (none is read while connecting or in the handshake). */
static void (*const on_step[])(struct conn *c, const char *esc) = {
    [ST_BANNER] = on_banner, [ST_EHLO1] = on_ehlo1, [ST_STARTTLS] = on_starttls,
    [ST_EHLO2] = on_ehlo2,   [ST_QUIT] = on_quit,
};

/* A complete reply in c->reply for the current step. */
static void on_reply(struct conn *c)
{
    char text[120], esc[200];

    ehlo_reply_first_line(&c->reply, text, sizeof(text));
    escape_log(esc, sizeof(esc), text, strlen(text));
    if (on_step[c->st] != NULL)
        on_step[c->st](c, esc);
}

/* Feed n bytes of SMTP to the reply parser; 1: a reply was handled, 0: more needed, -1: failed. */
static int feed_reply(struct conn *c, const uint8_t *p, size_t n, size_t *used)
{
    const char *why = NULL;
    int rc = ehlo_reply_feed(&c->reply, (const char *)p, n, used, &why);

    if (rc == 0)
        return 0;
    if (rc < 0) {
        if (c->st == ST_QUIT) {
            hang_up(c);
            return -1;
        }
        if (c->st == ST_EHLO2)
            probe_why_add(c, "bad reply %s: %s", probe_step_name(c->st), why);
        else
            probe_why(c, "bad reply from %s %s: %s", c->addr, probe_step_name(c->st), why);
        probe_fail(c);
        return -1;
    }
    on_reply(c);
    return 1;
}

/*
 * The steps of probe_dialogue_input(): each returns 1 when the connection may move on, 0 when it
 * waits for more bytes or has failed.
 */

static int step_handshake(struct conn *c)
{
    int rc = probe_tls_handshake(c);

    if (rc == 0)
        return 0;
    if (rc < 0) {
        probe_fail(c);
        return 0;
    }
    c->st = ST_EHLO2;
    if (send_ehlo(c) < 0) {
        probe_fail(c);
        return 0;
    }
    return 1;
}

/* Under TLS: decrypt what is there; a reply's trailing bytes are dropped. */
static int step_read_tls(struct conn *c)
{
    uint8_t buf[1024];
    char err[200];
    size_t used;
    int n = probe_tls_read(c, buf, sizeof(buf), err, sizeof(err));

    if (n == 0)
        return 0;
    if (n < 0) {
        if (c->st == ST_QUIT) {
            probe_smtp_close(c);
            return 0;
        }
        probe_why_add(c, "%s %s", err, probe_step_name(c->st));
        probe_fail(c);
        return 0;
    }
    return feed_reply(c, buf, (size_t)n, &used) >= 0;
}

/* In clear: the reply parser reads the receive buffer directly. */
static int step_read_clear(struct conn *c)
{
    size_t used = 0;
    int rc;

    if (c->rx_off == c->rx_len)
        return 0;
    rc = feed_reply(c, c->rx + c->rx_off, c->rx_len - c->rx_off, &used);
    if (rc < 0)
        return 0;
    if (rc == 0) {
        c->rx_off = c->rx_len = 0;
        return 0;
    }
    /* After STARTTLS's 220 on_starttls emptied the buffer; elsewhere keep the rest. */
    if (c->rx_len > 0)
        c->rx_off += used;
    return 1;
}

/* Move the connection on as far as the bytes in hand allow. */
void probe_dialogue_input(struct conn *c)
{
    while (!c->closing && !c->hungup) {
        int more = c->st == ST_HANDSHAKE ? step_handshake(c)
                   : c->tls              ? step_read_tls(c)
                                         : step_read_clear(c);

        if (!more)
            return;
    }
}

/* Events of the transport. */

void probe_dialogue_connected(struct conn *c)
{
    c->res.connected = 1;
    c->st = ST_BANNER;
}

void probe_dialogue_closed(struct conn *c, int err)
{
    if (c->closing)
        return;
    if (c->st == ST_QUIT) {
        probe_smtp_close(c);
        return;
    }
    if (c->st == ST_EHLO2)
        probe_why_add(c, "connection %s %s",
                      err == UV_EOF ? "closed by the server" : uv_strerror(err),
                      probe_step_name(c->st));
    else
        probe_why(c, "connection to %s %s %s", c->addr,
                  err == UV_EOF       ? "closed by the server"
                  : err == UV_ENOBUFS ? "overflowed its receive buffer"
                                      : uv_strerror(err),
                  probe_step_name(c->st));
    probe_fail(c);
}

void probe_dialogue_write_failed(struct conn *c, int err)
{
    if (c->closing)
        return;
    if (c->st == ST_QUIT) {
        probe_smtp_close(c);
        return;
    }
    probe_why(c, "sending to %s failed %s: %s", c->addr, probe_step_name(c->st), uv_strerror(err));
    probe_fail(c);
}

void probe_dialogue_timeout(struct conn *c)
{
    if (c->closing)
        return;
    if (c->st == ST_QUIT) {
        probe_smtp_close(c);
        return;
    }
    /* The probe's deadline: the whole probe, whatever step it is in. */
    c->res.timed_out = 1;
    if (c->st == ST_EHLO2)
        probe_why_add(c, "timed out after %u ms %s", c->svc->opts.timeout_ms,
                      probe_step_name(c->st));
    else
        probe_why(c, "timed out after %u ms %s (%s)", c->svc->opts.timeout_ms,
                  probe_step_name(c->st), c->addr);
    probe_fail(c);
}
