/*
 * Escaping of untrusted bytes (client keys, peer data) for log lines and messages, so a
 * peer cannot forge a log line or hide bytes: printable ASCII is kept, '\\' becomes "\\\\",
 * everything else becomes "\xNN".
 */
#ifndef PROTO_ESCAPE_H
#define PROTO_ESCAPE_H

#include <stddef.h>

/*
 * escape_log - escape in[0..len) into out (cap bytes, NUL-terminated whenever cap > 0).
 * Output that does not fit is cut at a whole escape and ends in "...". Returns out.
 */
char *escape_log(char *out, size_t cap, const char *in, size_t len);

#endif
