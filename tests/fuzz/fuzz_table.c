/*
 * Fuzzer for the overrides table parser (daemon/config/overrides.c, on proto/cfline.c,
 * proto/domain.c and proto/tlspolicy.c). Invariants: a parsed table answers lookups of its
 * own normalised keys; a rejected table leaves a non-empty one-line message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "fuzz_check.h"
#include "overrides.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512] = "";
    struct overrides *ov = overrides_parse((const char *)data, size, "fuzz", err, sizeof(err));
    struct overrides_hit hit;

    if (ov == NULL) {
        if (err[0] == '\0' || strchr(err, '\n') != NULL)
            __builtin_trap();
        return 0;
    }
    /* Lookups never crash, and a hit always carries a key and a checked value. */
    if (overrides_find(ov, "example.com", &hit) && (hit.key == NULL || hit.value == NULL))
        __builtin_trap();
    if (size > 0 && size < 300) {
        char key[DOMAIN_MAX + 1];
        const char *why;
        const char *nl = memchr(data, ' ', size);
        size_t kl = nl ? (size_t)(nl - (const char *)data) : size;

        /* The first line's key, if it is a plain domain, must be found exactly. */
        if (kl > 0 && memchr(data, '\n', kl) == NULL &&
            domain_normalize((const char *)data, kl, key, &why) == DOMAIN_OK) {
            if (overrides_find(ov, key, &hit) && strcmp(hit.key, key) != 0 && hit.key[0] != '.')
                __builtin_trap();
        }
    }
    overrides_free(ov);
    return 0;
}
