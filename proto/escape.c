/*
 * Log escaping of untrusted bytes.
 */
#include "escape.h"

#include <stdio.h>
#include <string.h>

char *escape_log(char *out, size_t cap, const char *in, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;

    if (cap == 0)
        return out;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        char piece[4];
        size_t pl;

        if (c == '\\') {
            piece[0] = '\\';
            piece[1] = '\\';
            pl = 2;
        } else if (c >= 0x20 && c < 0x7f) {
            piece[0] = (char)c;
            pl = 1;
        } else {
            piece[0] = '\\';
            piece[1] = 'x';
            piece[2] = hex[c >> 4];
            piece[3] = hex[c & 15];
            pl = 4;
        }
        /* Keep room for "..." and the NUL if more input follows. */
        if (n + pl + (i + 1 < len ? 4 : 1) > cap) {
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
    out[n < cap ? n : cap - 1] = '\0';
    return out;
}
