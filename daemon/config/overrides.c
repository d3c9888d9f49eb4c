/*
 * The overrides table: parsed from a Postfix-style table source into an array (sorted once,
 * to find duplicate keys) and indexed by an open-addressing hash table of at least twice as
 * many slots as entries, so a lookup costs the same with ten entries or a million: the exact
 * name, then each ".parent" key, each a hash and a compare or two, no copy of the name.
 */
#include "overrides.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfline.h"
#include "domain.h"
#include "hash.h"
#include "xalloc.h"

struct entry {
    char *key; /* normalised; ".parent" entries keep their leading dot */
    char *value;
    enum tlspolicy_level level;
};

struct overrides {
    struct entry *v;
    size_t n;
    size_t *slots; /* index + 1 into v, 0: empty; nslots a power of two >= 2n */
    size_t nslots;
};

/* FNV-1a (hash.h) of "." followed by s, without building the string. */
static uint32_t hash_dotted(const char *s)
{
    uint32_t h = (2166136261u ^ (uint8_t)'.') * 16777619u;

    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* Index every entry by its key (linear probing). */
static void build_index(struct overrides *ov)
{
    for (ov->nslots = 16; ov->nslots < 2 * ov->n; ov->nslots *= 2)
        ;
    ov->slots = xcalloc(ov->nslots, sizeof(*ov->slots));
    for (size_t i = 0; i < ov->n; i++) {
        size_t s = hash_string(ov->v[i].key) & (ov->nslots - 1);

        while (ov->slots[s] != 0)
            s = (s + 1) & (ov->nslots - 1);
        ov->slots[s] = i + 1;
    }
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->key, ((const struct entry *)b)->key);
}

struct overrides *overrides_empty(void)
{
    return xcalloc(1, sizeof(struct overrides));
}

void overrides_free(struct overrides *ov)
{
    if (ov == NULL)
        return;
    for (size_t i = 0; i < ov->n; i++) {
        free(ov->v[i].key);
        free(ov->v[i].value);
    }
    free(ov->v);
    free(ov->slots);
    free(ov);
}

size_t overrides_count(const struct overrides *ov)
{
    return ov->n;
}

struct overrides *overrides_parse(const char *text, size_t len, const char *fname, char *err,
                                  size_t errlen)
{
    struct overrides *ov = overrides_empty();
    struct cfreader r;
    char *line = xmalloc(CFLINE_MAX);
    size_t cap = 0;
    unsigned lineno = 0;
    const char *why = NULL;
    int rc;

    cfreader_init(&r, text, len);
    while ((rc = cfline_next(&r, line, CFLINE_MAX, &lineno, &why)) != CFLINE_EOF) {
        char *key, *value, norm[DOMAIN_MAX + 2];
        enum tlspolicy_level level;
        int d;

        if (rc < 0 || cfline_table(line, &key, &value, &why) < 0)
            goto fail;

        /* Keys are normalised like socketmap keys, so "Example.COM." matches "example.com". */
        d = domain_normalize(key, strlen(key), norm + 1, &why);
        if (d < 0)
            goto fail;
        if (tlspolicy_check(value, &level, &why) < 0)
            goto fail;
        norm[0] = '.';

        if (ov->n == cap) {
            cap = cap ? cap * 2 : 64;
            ov->v = xrealloc(ov->v, cap * sizeof(*ov->v));
        }
        ov->v[ov->n].key = xstrdup(d == DOMAIN_PARENT ? norm : norm + 1);
        ov->v[ov->n].value = xstrdup(value);
        ov->v[ov->n].level = level;
        ov->n++;
    }
    if (ov->n > 1)
        qsort(ov->v, ov->n, sizeof(*ov->v), cmp_entry);

    /* A key given twice is almost always an editing mistake; say which. */
    for (size_t i = 1; i < ov->n; i++) {
        if (strcmp(ov->v[i - 1].key, ov->v[i].key) == 0) {
            snprintf(err, errlen, "%s: duplicate entry for %s", fname, ov->v[i].key);
            goto fail_quiet;
        }
    }
    free(line);
    build_index(ov);
    return ov;

fail:
    snprintf(err, errlen, "%s:%u: %s", fname, lineno, why);
fail_quiet:
    free(line);
    overrides_free(ov);
    return NULL;
}

struct overrides *overrides_load(const char *path, char *err, size_t errlen)
{
    struct overrides *ov = NULL;
    FILE *fp = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0, cap = 0, got;

    if (fp == NULL) {
        snprintf(err, errlen, "%s: cannot open overrides table: %s", path, strerror(errno));
        return NULL;
    }
    do {
        if (len == cap) {
            if (cap >= OVERRIDES_MAX_FILE) {
                snprintf(err, errlen, "%s: overrides table larger than %u bytes", path,
                         OVERRIDES_MAX_FILE);
                goto done;
            }
            cap = cap ? cap * 2 : 65536;
            buf = xrealloc(buf, cap);
        }
        got = fread(buf + len, 1, cap - len, fp);
        len += got;
    } while (got > 0);
    if (ferror(fp)) {
        snprintf(err, errlen, "%s: cannot read overrides table: %s", path, strerror(errno));
        goto done;
    }
    ov = overrides_parse(buf, len, path, err, errlen);
done:
    free(buf);
    fclose(fp);
    return ov;
}

/* The entry whose key is name, or "." name when dotted; NULL when none. */
static const struct entry *find(const struct overrides *ov, const char *name, int dotted)
{
    size_t s;

    if (ov->n == 0)
        return NULL;
    s = (dotted ? hash_dotted(name) : hash_string(name)) & (ov->nslots - 1);
    for (; ov->slots[s] != 0; s = (s + 1) & (ov->nslots - 1)) {
        const struct entry *e = &ov->v[ov->slots[s] - 1];

        if (dotted ? e->key[0] == '.' && strcmp(e->key + 1, name) == 0 : strcmp(e->key, name) == 0)
            return e;
    }
    return NULL;
}

int overrides_find(const struct overrides *ov, const char *domain, struct overrides_hit *hit)
{
    const struct entry *e = find(ov, domain, 0);
    const char *p = domain;

    /* Postfix: the exact domain, then ".parent" keys from the nearest parent upward. */
    while (e == NULL && (p = domain_parent(p)) != NULL)
        e = find(ov, p, 1);
    if (e == NULL)
        return 0;
    hit->key = e->key;
    hit->value = e->value;
    hit->level = e->level;
    return 1;
}
