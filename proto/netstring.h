/*
 * Netstrings (D. J. Bernstein, http://cr.yp.to/proto/netstrings.txt): "LEN:DATA,".
 * The decoder is incremental: it is handed whatever bytes have arrived so far and says
 * whether a whole netstring is there, more bytes are needed, or the input can never become
 * a valid netstring within the caller's limit. It neither allocates nor copies; the payload
 * it returns points into the caller's buffer.
 */
#ifndef PROTO_NETSTRING_H
#define PROTO_NETSTRING_H

#include <stddef.h>

enum {
    NETSTRING_OK = 0,         /* a complete netstring was decoded */
    NETSTRING_MORE = 1,       /* valid so far; more input is needed */
    NETSTRING_EBADLEN = -1,   /* the length prefix is not decimal digits or is empty */
    NETSTRING_ETOOLONG = -2,  /* the announced length exceeds the caller's limit */
    NETSTRING_ENOCOMMA = -3,  /* the payload is not followed by ',' */
    NETSTRING_ELEADZERO = -4, /* a length with a leading zero ("01:") */
};

/*
 * Longest decimal length prefix accepted. A 20-digit length is rejected as soon as the
 * digits exceed this, without waiting for the colon.
 */
#define NETSTRING_MAX_DIGITS 9

/*
 * netstring_decode - look for one netstring at the start of buf[0..len).
 *   max:      the largest payload accepted (bounds what a peer can make the caller buffer).
 *   payload:  on NETSTRING_OK, the payload (inside buf) and its length in *plen.
 *   consumed: on NETSTRING_OK, bytes taken from buf, including the prefix and comma.
 *   why:      on error, a static English reason for the log.
 * Returns NETSTRING_OK, NETSTRING_MORE, or a negative NETSTRING_E* code. On MORE and on
 * errors the out-parameters other than why are left alone.
 */
int netstring_decode(const char *buf, size_t len, size_t max, const char **payload, size_t *plen,
                     size_t *consumed, const char **why);

/*
 * netstring_encoded_len - bytes netstring_encode() writes for a payload of len bytes.
 */
size_t netstring_encoded_len(size_t len);

/*
 * netstring_encode - write "LEN:" data "," to out, which holds cap bytes. The payload is
 * given as up to two pieces (b may be NULL with blen 0) so a prefix and a body need no
 * intermediate copy. Returns the number of bytes written, or 0 when cap is too small
 * (nothing useful is written then).
 */
size_t netstring_encode(char *out, size_t cap, const char *a, size_t alen, const char *b,
                        size_t blen);

#endif
