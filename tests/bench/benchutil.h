/*
 * What bench_loadgen (loadgen.c) and bench_ceiling (ceiling.c) share: the one-line fatal
 * error and the x*alloc family built on it, unix:PATH and inet:HOST:PORT endpoints, the
 * libuv stream union a connection embeds, and an incremental netstring framer
 * ("LEN:DATA,", D. J. Bernstein) that keeps lengths only, never the payload. Benchmark
 * tools only: errors here end the process, as they should at start-up.
 */
#ifndef TLSPOLICYD_BENCHUTIL_H
#define TLSPOLICYD_BENCHUTIL_H

#include <stddef.h>
#include <uv.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* The name bench_fatal() puts before its message, e.g. "bench_loadgen"; set it first. */
extern const char *bench_progname;

/* Print "PROGNAME: MESSAGE" on stderr and exit 2: bad usage, start-up failure, no memory. */
void bench_fatal(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* malloc, realloc and calloc that either succeed or end the process through bench_fatal();
 * a size of 0 allocates 1 byte. */
void *bench_xmalloc(size_t n);
void *bench_xrealloc(void *p, size_t n);
void *bench_xcalloc(size_t n, size_t size);

/* The path of spec "unix:PATH", copied into out (outlen bytes: a sun_path); ends the
 * process when it is empty or does not fit. */
void bench_unix_path(const char *spec, char *out, size_t outlen);

/* The addresses of spec "inet:HOST:PORT" (an IPv6 address in brackets: inet:[::1]:PORT),
 * numeric port, with extra getaddrinfo flags (AI_PASSIVE to listen); the caller frees them
 * with freeaddrinfo(). Ends the process when spec is malformed or does not resolve. */
struct addrinfo *bench_inet_addrs(const char *spec, int flags);

/* A connection's libuv stream, a pipe or a TCP socket, seen as whichever type a call wants. */
union bench_stream {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
};

enum bench_frame_state { BENCH_FRAME_LEN, BENCH_FRAME_DATA, BENCH_FRAME_COMMA };

/* The state of the netstring being received. */
struct bench_frame {
    enum bench_frame_state state;
    size_t len;          /* announced payload length; after a netstring, its length */
    unsigned digits;     /* digits of len seen so far */
    size_t pos;          /* payload bytes seen so far */
    size_t max;          /* longest payload accepted */
    const char *toolong; /* the reason given for a longer one */
};

/* A framer waiting for the first netstring; payloads over max are refused with toolong. */
void bench_frame_init(struct bench_frame *f, size_t max, const char *toolong);

/*
 * Feed p[0..n) to the framer; it stops after the comma of a complete netstring. Returns 1
 * when one is complete (f->len is its payload length), 0 when all input was used without
 * completing one, -1 on malformed input with a reason in *why. *used is the number of bytes
 * taken in every case. Each piece of payload is handed to data (when not NULL) with arg and
 * its offset in the payload; the bytes stay in p.
 */
int bench_frame_feed(struct bench_frame *f, const char *p, size_t n,
                     void (*data)(void *arg, const char *piece, size_t len, size_t off), void *arg,
                     size_t *used, const char **why);

#endif
