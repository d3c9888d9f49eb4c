/*
 * Fuzzer for proto/cfline.c: read every logical line of the input as a configuration or
 * table file, with the daemon's buffer size and with a small one, then split each line both
 * ways. Lines must fit the buffer, be NUL-terminated, trimmed, free of newlines and comment
 * starts; line numbers must rise; the reader must finish within one call per physical line;
 * a split must leave its parts inside the line, trimmed as documented.
 */
#include "cfline.h"
#include "fuzz_check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static void split(const char *line, size_t len)
{
    char copy[CFLINE_MAX];
    char *key = NULL, *value = NULL;
    const char *why = NULL;

    /* cfline_keyvalue: key [a-z0-9_]+ at the start, value trimmed, both inside the line. */
    memcpy(copy, line, len + 1);
    if (cfline_keyvalue(copy, &key, &value, &why) == 0) {
        CHECK(key == copy && *key != '\0');
        for (const char *p = key; *p; p++)
            CHECK((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_');
        CHECK(value > key + strlen(key) && value <= copy + len);
        CHECK(value + strlen(value) <= copy + len);
        if (*value) {
            CHECK(!blank(value[0]));
            CHECK(!blank(value[strlen(value) - 1]));
        }
    } else {
        CHECK(why != NULL && *why != '\0');
    }

    /* cfline_table: a non-empty blank-free key at the start, a non-empty value after it. */
    memcpy(copy, line, len + 1);
    key = value = NULL;
    why = NULL;
    if (cfline_table(copy, &key, &value, &why) == 0) {
        size_t kl = strlen(key);

        CHECK(key == copy && kl > 0);
        for (size_t i = 0; i < kl; i++)
            CHECK(!blank(key[i]));
        CHECK(value > key + kl && value < copy + len);
        CHECK(*value != '\0' && !blank(*value));
        CHECK(value + strlen(value) == copy + len);
    } else {
        CHECK(why != NULL && *why != '\0');
    }
}

static void read_all(const char *buf, size_t size, size_t cap, size_t physical)
{
    struct cfreader r;
    char *out = malloc(cap + 1);
    unsigned last = 0;
    size_t calls = 0;
    int rc;

    CHECK(out != NULL);
    cfreader_init(&r, buf, size);
    for (;;) {
        unsigned lineno = 0;
        const char *why = NULL;

        /* Each call consumes at least one physical line, or reports EOF. */
        CHECK(++calls <= physical + 1);
        out[cap] = 'G'; /* a guard byte past the caller's buffer */
        rc = cfline_next(&r, out, cap, &lineno, &why);
        CHECK(out[cap] == 'G');
        if (rc == CFLINE_EOF)
            break;
        CHECK(lineno > last && lineno <= physical);
        last = lineno;
        if (rc < 0) {
            CHECK(rc == CFLINE_ETOOLONG || rc == CFLINE_ENUL || rc == CFLINE_ECONT);
            CHECK(why != NULL && *why != '\0');
            continue;
        }
        CHECK(rc == CFLINE_LINE);
        {
            size_t len = strnlen(out, cap);

            CHECK(len < cap && len > 0);
            CHECK(memchr(out, '\n', len) == NULL);
            CHECK(!blank(out[0]) && out[0] != '#');
            CHECK(!blank(out[len - 1]));
            split(out, len);
        }
    }
    /* EOF is sticky. */
    {
        unsigned lineno = 0;
        const char *why = NULL;

        CHECK(cfline_next(&r, out, cap, &lineno, &why) == CFLINE_EOF);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    size_t physical = 0;

    for (size_t i = 0; i < size; i++)
        physical += buf[i] == '\n';
    if (size > 0 && buf[size - 1] != '\n')
        physical++;

    read_all(buf, size, CFLINE_MAX, physical);
    read_all(buf, size, 16, physical);
    return 0;
}
