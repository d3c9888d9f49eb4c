/*
 * The metrics endpoint (SPEC section 6): a minimal HTTP/1.x server on the daemon's loop for
 * GET /metrics and GET /healthz. One request per connection, answered and closed; bounded
 * request size (HTTPREQ_MAX), connection count and time, so slow or hostile HTTP clients
 * cost a fixed amount of memory and never delay socketmap work.
 */
#ifndef DAEMON_HTTP_H
#define DAEMON_HTTP_H

#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "metrics.h"

/* Connections served at once; more are accepted and closed at once. */
#define HTTP_MAX_CONNS 64
/* A connection has this long to send its request and read the answer. */
#define HTTP_TIMEOUT_MS 5000

struct http_server;

/* http_gauges_fn - fill g with the daemon's current gauges, at each scrape. */
typedef void (*http_gauges_fn)(void *arg, struct metrics_gauges *g);

/*
 * http_server_open - serve on the inet endpoint ep, or on the already listening socket fd
 * when fd >= 0 (socket activation; ep is then only its name for logs). gauges(arg, ...) is
 * called for each /metrics and /healthz request. NULL with "ENDPOINT: reason" in err.
 */
struct http_server *http_server_open(uv_loop_t *loop, const struct endpoint *ep, int fd,
                                     http_gauges_fn gauges, void *arg, char *err, size_t errlen);

/*
 * http_server_close - stop listening and close every connection; the memory goes when the
 * loop has run the close callbacks. NULL is ignored.
 */
void http_server_close(struct http_server *hs);

#endif
