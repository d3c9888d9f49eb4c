/*
 * HTTPS policy fetches (RFC 8461 3.3) with libcurl's multi-socket API on libuv. The caller
 * resolves and vets the host's addresses; the fetch is pinned to them. HTTPS only, the
 * certificate verified against the configured CA bundle, no redirects, 200 only,
 * text/plain only, the body capped in the write callback, proxies ignored.
 */
#ifndef DAEMON_FETCH_H
#define DAEMON_FETCH_H

#include <stddef.h>
#include <uv.h>

struct fetch_svc;
struct fetch_req;
struct cafile;

struct fetch_opts {
    struct cafile *ca;           /* the CA bundle in memory (a reference is taken); NULL: */
    const char *ca_file;         /* load this PEM bundle (NULL or "": the system bundle) */
    unsigned connect_timeout_ms; /* TCP + TLS handshake */
    unsigned total_timeout_ms;   /* the whole fetch */
    size_t max_body;             /* bytes; more is FETCH_TOO_BIG */
    unsigned port;               /* 443 except in tests; 0: 443 */
};

enum fetch_outcome {
    FETCH_OK,           /* 200, text/plain, body within max_body */
    FETCH_HTTP_STATUS,  /* any other status (3xx included: redirects are not followed) */
    FETCH_CONTENT_TYPE, /* not text/plain */
    FETCH_TOO_BIG,      /* body over max_body */
    FETCH_TLS,          /* handshake or certificate verification failed */
    FETCH_CONNECT,      /* no connection to any pinned address */
    FETCH_TIMEOUT,      /* connect or total timeout */
    FETCH_ERROR,        /* anything else */
    /*
     * Our side failed, not the policy host: the CA bundle unusable by libcurl, no memory,
     * no file descriptor or socket, a transfer that could not be set up. RFC 8461's "no
     * policy" does not apply to it: the caller must not read it as the domain's failure.
     */
    FETCH_LOCAL,
};

struct fetch_result {
    enum fetch_outcome outcome;
    long http_status; /* 0 when no response */
    const char *body; /* FETCH_OK only; valid during the callback */
    size_t len;
    char why[256]; /* one line for the log: what failed and how */
};

/*
 * Called exactly once per fetch_start() unless cancelled or the service destroyed, always
 * from the loop, never from inside fetch_start(). res (and res->body) are valid during the
 * call only. The callback may call fetch_start(), fetch_cancel() on other requests and
 * fetch_svc_destroy().
 */
typedef void (*fetch_cb)(void *arg, const struct fetch_result *res);

/*
 * fetch_svc_create - a fetch service on loop; opts is copied, and a reference to opts->ca
 * taken (without one, opts->ca_file is read now, into memory). Calls curl_global_init()
 * once per process. NULL with a one-line reason in err (libcurl cannot start, or the CA
 * file is missing, unreadable or holds no certificate).
 */
struct fetch_svc *fetch_svc_create(uv_loop_t *loop, const struct fetch_opts *opts, char *err,
                                   size_t errlen);

/*
 * fetch_set_ca - fetches started from now on verify against ca (a reference is taken);
 * fetches in flight finish with the bundle they started with. For SIGHUP.
 */
void fetch_set_ca(struct fetch_svc *svc, struct cafile *ca);
/*
 * fetch_svc_destroy - drop pending fetches without callbacks (their fetch_req pointers die
 * with them) and close every handle; the memory goes when the loop has run the close
 * callbacks. Safe at any time, also from a fetch callback. NULL is ignored.
 */
void fetch_svc_destroy(struct fetch_svc *svc);

/*
 * fetch_start - GET https://host[:port]/path, connecting only to addrs (numeric IPv4/IPv6
 * strings, 1 to 16 of them; copied). host must be an A-label name, path printable ASCII
 * (a leading '/' is added if missing). Never calls cb before returning: invalid arguments
 * are reported as FETCH_ERROR, libcurl set-up failures as FETCH_LOCAL, from the loop. Returns the
 * request for fetch_cancel(), valid until its callback returns; NULL only when svc is
 * being destroyed (then cb never runs).
 */
struct fetch_req *fetch_start(struct fetch_svc *svc, const char *host, const char *path,
                              const char *const *addrs, size_t naddrs, fetch_cb cb, void *arg);
/* fetch_cancel - cb of req will not run. NULL, or req whose callback is running: no-op. */
void fetch_cancel(struct fetch_req *req);

/* fetch_outcome_name - "ok", "http-status", "content-type", "too-big", "tls", ..., "local" */
const char *fetch_outcome_name(enum fetch_outcome o);

/* fetch_outcome_prefix - the start of a failed fetch's reason: "timed out", "TLS failed"... */
const char *fetch_outcome_prefix(enum fetch_outcome o);

/* fetch_curl_outcome - the outcome of a failed transfer's CURLcode: FETCH_LOCAL for our CA
 * bundle, memory and libcurl set-up, FETCH_TLS, FETCH_TIMEOUT, ... (fetch_outcome.c) */
enum fetch_outcome fetch_curl_outcome(int rc);

#endif
