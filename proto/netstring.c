/*
 * Netstring decoding and encoding (http://cr.yp.to/proto/netstrings.txt), as used by the
 * socketmap protocol. The decoder is called again with the grown buffer until it reports a
 * whole netstring; it rejects bad input as early as the bytes allow.
 */
#include "netstring.h"

#include <string.h>

int netstring_decode(const char *buf, size_t len, size_t max, const char **payload, size_t *plen,
                     size_t *consumed, const char **why)
{
    size_t i, n = 0;

    /* The length prefix: decimal digits, no leading zero except "0" itself. */
    for (i = 0; i < len && buf[i] >= '0' && buf[i] <= '9'; i++) {
        if (i >= NETSTRING_MAX_DIGITS) {
            *why = "netstring length has too many digits";
            return NETSTRING_ETOOLONG;
        }
        if (i == 1 && buf[0] == '0') {
            *why = "netstring length has a leading zero";
            return NETSTRING_ELEADZERO;
        }
        n = n * 10 + (size_t)(buf[i] - '0');
        if (n > max) {
            *why = "netstring length exceeds the request size limit";
            return NETSTRING_ETOOLONG;
        }
    }
    if (i == len)
        return NETSTRING_MORE;
    if (i == 0 || buf[i] != ':') {
        *why = "netstring does not start with a decimal length and ':'";
        return NETSTRING_EBADLEN;
    }
    i++;

    /* The payload, then the terminating comma. */
    if (len - i < n + 1)
        return NETSTRING_MORE;
    if (buf[i + n] != ',') {
        *why = "netstring payload is not followed by ','";
        return NETSTRING_ENOCOMMA;
    }
    *payload = buf + i;
    *plen = n;
    *consumed = i + n + 1;
    return NETSTRING_OK;
}

size_t netstring_encoded_len(size_t len)
{
    size_t digits = 1;

    for (size_t v = len; v >= 10; v /= 10)
        digits++;
    return digits + 1 + len + 1;
}

size_t netstring_encode(char *out, size_t cap, const char *a, size_t alen, const char *b,
                        size_t blen)
{
    size_t len = alen + blen;
    size_t total = netstring_encoded_len(len);
    char digits[24];
    size_t nd = 0;

    if (total > cap || len < alen)
        return 0;

    /* Digits come out least significant first; reverse them into place. */
    do {
        digits[nd++] = (char)('0' + len % 10);
        len /= 10;
    } while (len > 0);
    for (size_t k = 0; k < nd; k++)
        out[k] = digits[nd - 1 - k];
    out[nd] = ':';
    if (alen)
        memcpy(out + nd + 1, a, alen);
    if (blen)
        memcpy(out + nd + 1 + alen, b, blen);
    out[total - 1] = ',';
    return total;
}
