/*
 * fdwatch: running out of file descriptors (RLIMIT_NOFILE, or the system's table) is a fault
 * of this machine, not of a domain, and shows up in many places at once: accept(), c-ares'
 * sockets, libcurl's sockets, the store. Each place that meets EMFILE or ENFILE tells
 * fdwatch_note(); one error line is logged when the shortage starts and one notice when a
 * descriptor can be had again (a probe each second while it lasts, never a line per event).
 * A probe also runs each second while all is well, since libuv drops connections it cannot
 * accept without telling anyone (its reserve-descriptor trick). One loop thread.
 */
#ifndef DAEMON_FDWATCH_H
#define DAEMON_FDWATCH_H

#include <uv.h>

/* fdwatch_start - probe each second on loop (an unreferenced timer); fdwatch_stop - no more. */
void fdwatch_start(uv_loop_t *loop);
void fdwatch_stop(void);

/*
 * fdwatch_probe - 0 when a new descriptor can be had at this moment, else the errno that
 * says why not (EMFILE, ENFILE, ...). Costs a dup and a close; opens no file.
 */
int fdwatch_probe(void);

/* fdwatch_local - whether err (an errno) means this process or machine is out of resources. */
int fdwatch_local(int err);

/*
 * fdwatch_note - where (a few words: "accepting a connection", "a DNS socket") failed with
 * err for want of a descriptor; logged only when this starts a shortage. Counted.
 */
void fdwatch_note(const char *where, int err);

/* fdwatch_short - 1 while a shortage is under way (noted and not yet over). */
int fdwatch_short(void);

/*
 * FDWATCH_START_MIN - the open file limit below which nothing starts: the standard streams,
 * libuv's loop (epoll, its wake-up and signal pipes), the state_dir lock, the store's two
 * files, the listeners, the resolver's sockets and a few connections. Below about 16 libuv
 * aborts or the loop cannot be made, before anything could say why.
 */
#define FDWATCH_START_MIN 32

/*
 * fdwatch_floor - before any loop is made: raise the soft open file limit to the hard one,
 * and 0 when it is then at least FDWATCH_START_MIN; else -1 with a one-line reason naming
 * both limits and how to raise them.
 */
int fdwatch_floor(char *err, size_t errlen);

#endif
