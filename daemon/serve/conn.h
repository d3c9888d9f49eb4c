/*
 * One socketmap client connection: reads netstring requests, starts a lookup for each,
 * and writes the answers in request order, however the lookups complete. Bounded: one
 * request's worth of read buffer, max_pipeline answers outstanding, and timeouts for idle
 * connections, slow requests and stuck writes. A client that half-closes still gets every
 * answer it asked for.
 */
#ifndef DAEMON_CONN_H
#define DAEMON_CONN_H

#include <uv.h>

struct server;
struct conn;

/*
 * conn_accept - accept one connection from the listening stream server_handle and start
 * serving it. When max_connections are open the connection is accepted and closed at once.
 */
void conn_accept(struct server *srv, uv_stream_t *server_handle, int is_unix);

/* conn_drain - SIGTERM: finish what was asked, read nothing new, then close. */
void conn_drain(struct conn *c);

/* conn_close - close now, dropping unanswered requests (drain timeout expired). */
void conn_close(struct conn *c);

/* conn_first, conn_next - the server's open connections, in turn (for drain); NULL at
 * the end. */
struct conn *conn_first(struct server *srv);
struct conn *conn_next(struct conn *c);

#endif
