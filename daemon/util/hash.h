/*
 * The string hash of the daemon's tables keyed by a domain (lookup flights, the MTA-STS
 * cache, the store's writes in flight): 32-bit FNV-1a (Fowler, Noll, Vo; the constants of
 * draft-eastlake-fnv). Fast on short keys and good enough spread for power-of-two buckets.
 */
#ifndef DAEMON_HASH_H
#define DAEMON_HASH_H

#include <stdint.h>

/* hash_string - FNV-1a of the bytes of s up to its NUL. */
static inline uint32_t hash_string(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

#endif
