/*
 * Fuzzer for the REQUIRETLS probe's SMTP dialogue (daemon/requiretls/probe_dialogue.c): the
 * state machine of one probe connection, driven without a network by a fake transport
 * (the probe_smtp_* and probe_tls_* functions below, in place of libuv's TCP and mbedTLS)
 * from a fuzzed stream of events. The first byte decides whether the TCP connection is
 * made; then each byte is an event:
 *   0x00-0x7f  a chunk of (byte + 1) bytes from the server (what is left of the input when
 *              shorter) added to the receive buffer; a full buffer is UV_ENOBUFS, as libuv
 *   0x80-0x9f  end of stream (UV_EOF)          0xa0-0xbf  connection reset
 *   0xc0-0xcf  the connection's timer fires    0xd0-0xdf  a queued write fails
 *   0xe0-0xef  the next write fails at once    0xf0-0xff  the next TLS read ends the session
 * Under "TLS" the bytes are plaintext; the handshake takes one byte: 0xff fails it, bit 0
 * is the PKIX verdict. At the end of the input the deadline fires until the connection is
 * closed (it must be, within two). Invariants: one result, delivered before the close,
 * QUIT sent only after it; the commands in RFC order (EHLO, STARTTLS, and under TLS EHLO,
 * then QUIT); nothing sent in clear after STARTTLS's 220 is read as TLS (RFC 3207 6);
 * STARTTLS only when listed, REQUIRETLS only from the EHLO reply under TLS; the result's
 * flags consistent and its reason one printable line; nothing read after the close.
 */
#include <ctype.h>
#include <string.h>

#include "fuzz_check.h"
#include "probe_int.h"

#define HELO "probe.example"
#define E "EHLO " HELO "\r\n"
#define S "STARTTLS\r\n"
#define Q "QUIT\r\n"

/* The service and the entry, set up once (the service is large: its hash buckets). */
static struct probe_svc svc;
static struct entry entry;

static struct {
    int delivered;             /* probe_complete() took the result */
    struct probe_result res;   /* as delivered */
    char clear[256], tls[256]; /* what was written, in clear and under TLS */
    size_t nclear, ntls;
    int writes;          /* writes queued */
    int fail_next_write; /* the next write fails at once */
    int tls_end;         /* the next TLS read ends the session */
    int tls_began;       /* probe_tls_begin() was called */
    int waiting;         /* probe_smtp_wait() was called (QUIT's grace) */
    int timeouts;        /* timer events */
    size_t ntls_in;      /* plaintext bytes read under TLS, kept in tls_in */
    int tls_in_cut;      /* more than tls_in holds were read */
} f;
static char tls_in[64 * 1024];

/* The fake transport: what probe_smtp.c does, without libuv. */

void probe_complete(struct conn *c)
{
    if (c->e == NULL)
        return;
    CHECK(!f.delivered);
    c->e = NULL;
    f.delivered = 1;
    f.res = c->res;
}

void probe_smtp_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->e != NULL) {
        if (c->res.why[0] == '\0')
            probe_why(c, "probe of %s ended early", c->addr);
        probe_complete(c);
    }
}

static void record(char *log, size_t *n, size_t cap, const void *p, size_t len)
{
    CHECK(*n + len <= cap);
    memcpy(log + *n, p, len);
    *n += len;
}

int probe_smtp_write(struct conn *c, const void *p, size_t n)
{
    if (c->closing)
        return -1;
    CHECK(!c->tls);
    if (f.fail_next_write) {
        f.fail_next_write = 0;
        return -32; /* UV_EPIPE */
    }
    if (n == strlen(Q) && memcmp(p, Q, n) == 0)
        CHECK(f.delivered);
    record(f.clear, &f.nclear, sizeof(f.clear), p, n);
    f.writes++;
    return 0;
}

void probe_smtp_wait(struct conn *c, unsigned ms)
{
    CHECK(c->st == ST_QUIT && f.delivered && ms > 0);
    f.waiting = 1;
}

void probe_smtp_hang_up(struct conn *c)
{
    CHECK(c->hungup && c->st == ST_QUIT);
    probe_smtp_close(c);
}

/* The fake TLS: plaintext over the receive buffer. */

int probe_tls_begin(struct conn *c)
{
    /* RFC 3207 6: what came in clear with or after the 220 is gone. */
    CHECK(c->st == ST_STARTTLS && c->rx_off == 0 && c->rx_len == 0);
    CHECK(!f.tls_began);
    f.tls_began = 1;
    c->tls = 1;
    return 0;
}

int probe_tls_handshake(struct conn *c)
{
    uint8_t b;

    CHECK(!c->closing && c->tls && c->st == ST_HANDSHAKE);
    if (c->rx_off == c->rx_len)
        return 0;
    b = c->rx[c->rx_off++];
    if (b == 0xff) {
        probe_why(c, "TLS handshake with %s failed: fake", c->addr);
        return -1;
    }
    c->res.tls_ok = 1;
    c->res.pkix_ok = b & 1;
    snprintf(c->res.tls_version, sizeof(c->res.tls_version), "TLSv1.2");
    snprintf(c->res.cipher, sizeof(c->res.cipher), "FAKE");
    probe_why(c, "TLSv1.2 FAKE; PKIX %s; DANE not tried (no TLSA records); ",
              c->res.pkix_ok ? "ok" : "failed");
    return 1;
}

int probe_tls_read(struct conn *c, uint8_t *buf, size_t len, char *err, size_t errlen)
{
    size_t n = c->rx_len - c->rx_off;

    CHECK(!c->closing && c->tls && !c->hungup);
    if (f.tls_end) {
        snprintf(err, errlen, "the server closed the TLS session");
        return -1;
    }
    if (n == 0)
        return 0;
    if (n > len)
        n = len;
    memcpy(buf, c->rx + c->rx_off, n);
    c->rx_off += n;
    if (f.ntls_in + n <= sizeof(tls_in)) {
        memcpy(tls_in + f.ntls_in, buf, n);
        f.ntls_in += n;
    } else {
        f.tls_in_cut = 1;
    }
    return (int)n;
}

int probe_tls_write(struct conn *c, const char *p, size_t n)
{
    CHECK(c->tls && !c->closing);
    if (f.fail_next_write) {
        f.fail_next_write = 0;
        probe_why(c, "TLS write to %s failed: fake", c->addr);
        return -1;
    }
    if (n == strlen(Q) && memcmp(p, Q, n) == 0)
        CHECK(f.delivered);
    record(f.tls, &f.ntls, sizeof(f.tls), p, n);
    f.writes++;
    return 0;
}

/* Bytes from the server into c->rx, compacted first as on_alloc() does. */
static void chunk(struct conn *c, const uint8_t *p, size_t n)
{
    if (c->rx_off > 0) {
        memmove(c->rx, c->rx + c->rx_off, c->rx_len - c->rx_off);
        c->rx_len -= c->rx_off;
        c->rx_off = 0;
    }
    if (c->rx_len == RX_CAP) {
        probe_dialogue_closed(c, UV_ENOBUFS);
        return;
    }
    if (n > RX_CAP - c->rx_len)
        n = RX_CAP - c->rx_len;
    memcpy(c->rx + c->rx_len, p, n);
    c->rx_len += n;
    probe_dialogue_input(c);
}

static int has_word(const char *buf, size_t n, const char *w)
{
    size_t wl = strlen(w);

    for (size_t i = 0; i + wl <= n; i++)
        if (strncasecmp(buf + i, w, wl) == 0)
            return 1;
    return 0;
}

static int is(const char *log, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(log, s, n) == 0;
}

/* What the connection did, against the rules of the header. */
static void check_result(const struct conn *c)
{
    const struct probe_result *r = &f.res;

    CHECK(c->closing && f.delivered);
    CHECK(is(f.clear, f.nclear, "") || is(f.clear, f.nclear, Q) || is(f.clear, f.nclear, E) ||
          is(f.clear, f.nclear, E Q) || is(f.clear, f.nclear, E S) || is(f.clear, f.nclear, E S Q));
    CHECK(is(f.tls, f.ntls, "") || is(f.tls, f.ntls, E) || is(f.tls, f.ntls, E Q));
    CHECK(f.ntls == 0 || is(f.clear, f.nclear, E S));
    CHECK(!f.tls_began || is(f.clear, f.nclear, E S));
    CHECK(!has_word(f.clear, f.nclear, S) || r->starttls_offered);
    CHECK(!r->starttls_offered || r->connected);
    CHECK(!r->tls_ok || (r->starttls_offered && f.tls_began));
    CHECK(!r->pkix_ok || r->tls_ok);
    CHECK(!r->requiretls_advertised || (r->tls_ok && c->ehlo2_read));
    CHECK(!r->requiretls_advertised || has_word(tls_in, f.ntls_in, "REQUIRETLS") || f.tls_in_cut);
    CHECK(!r->timed_out || f.timeouts > 0);
    CHECK(!r->dane_ok && r->ntlsa == 0);
    CHECK(r->why[0] != '\0' && strlen(r->why) < sizeof(r->why));
    for (const char *p = r->why; *p; p++)
        CHECK(*p >= 0x20 && *p < 0x7f);
    /* FUZZ_VERBOSE=1 with the replay: what each input made of the dialogue. */
    if (getenv("FUZZ_VERBOSE") != NULL)
        fprintf(stderr,
                "conn=%d starttls=%d tls=%d pkix=%d requiretls=%d timeout=%d sent=%zu+%zu: %s\n",
                r->connected, r->starttls_offered, r->tls_ok, r->pkix_ok, r->requiretls_advertised,
                r->timed_out, f.nclear, f.ntls, r->why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct conn *c;
    size_t pos = 0;

    if (size == 0)
        return 0;
    memset(&f, 0, sizeof(f));
    svc.helo_name = HELO;
    svc.opts.timeout_ms = 5000;
    c = calloc(1, sizeof(*c));
    CHECK(c != NULL);
    c->svc = &svc;
    c->e = &entry;
    c->st = ST_CONNECT;
    snprintf(c->host, sizeof(c->host), "mx.example.com");
    snprintf(c->addr, sizeof(c->addr), "192.0.2.1");
    if (data[pos++] & 1) {
        probe_dialogue_connected(c);
    } else {
        probe_why(c, "no connection to %s port 25: connection refused", c->addr);
        probe_fail(c);
    }
    while (pos < size && !c->closing) {
        uint8_t op = data[pos++];

        if (op < 0x80) {
            size_t n = (size_t)op + 1 < size - pos ? (size_t)op + 1 : size - pos;

            chunk(c, data + pos, n);
            pos += n;
        } else if (op < 0xa0) {
            probe_dialogue_closed(c, UV_EOF);
        } else if (op < 0xc0) {
            probe_dialogue_closed(c, UV_ECONNRESET);
        } else if (op < 0xd0) {
            f.timeouts++;
            probe_dialogue_timeout(c);
        } else if (op < 0xe0) {
            if (f.writes > 0)
                probe_dialogue_write_failed(c, UV_EPIPE);
        } else if (op < 0xf0) {
            f.fail_next_write = 1;
        } else {
            f.tls_end = 1;
        }
    }
    /* The deadline, then QUIT's grace: nothing waits past them. */
    for (int i = 0; i < 2 && !c->closing; i++) {
        f.timeouts++;
        probe_dialogue_timeout(c);
    }
    check_result(c);
    free(c);
    return 0;
}
