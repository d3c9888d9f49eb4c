/*
 * Log escaping of untrusted bytes.
 */
#include "escape.h"

#include <stdio.h>
#include <string.h>

/* Length of the escape for byte c. */
static size_t piece_len(unsigned char c)
{
    if (c == '\\')
        return 2;
    return c >= 0x20 && c < 0x7f ? 1 : 4;
}

char *escape_log(char *out, size_t cap, const char *in, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0, total = 0;
    int fits;

    if (cap == 0)
        return out;
    /* Room for "..." is kept back only when the whole escaped text cannot fit. */
    for (size_t i = 0; i < len && total < cap; i++)
        total += piece_len((unsigned char)in[i]);
    fits = total < cap;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        char piece[4];
        size_t pl = piece_len(c);

        if (pl == 2) {
            piece[0] = '\\';
            piece[1] = '\\';
        } else if (pl == 1) {
            piece[0] = (char)c;
        } else {
            piece[0] = '\\';
            piece[1] = 'x';
            piece[2] = hex[c >> 4];
            piece[3] = hex[c & 15];
        }
        if (!fits && n + pl + 4 > cap) {
            /* Every earlier piece left 4 bytes free, so "..." and the NUL fit. */
            if (n + 4 <= cap) {
                memcpy(out + n, "...", 3);
                n += 3;
            }
            break;
        }
        memcpy(out + n, piece, pl);
        n += pl;
    }
    out[n] = '\0';
    return out;
}
