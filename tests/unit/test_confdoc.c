/*
 * The documentation keeps step with the parser: every key config_keys() knows has a row in
 * the README's Configuration table and an entry in tlspolicyd.conf(5), and every key those
 * name is one the parser knows. The README's list of keys only a restart changes is the set
 * of keys flagged restart_only.
 */
#include "check.h"
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXNAMES 256

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *buf;
    long n;

    if (fp == NULL)
        return NULL;
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    buf = calloc(1, (size_t)n + 1);
    if (fread(buf, 1, (size_t)n, fp) != (size_t)n)
        n = 0;
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static int known(const char *name)
{
    for (const struct config_key_doc *k = config_keys(); k->name; k++)
        if (strcmp(k->name, name) == 0)
            return 1;
    return 0;
}

static int listed(char names[][64], size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return 1;
    return 0;
}

/* README: the first cell of each row of the table under "## Configuration". */
static size_t readme_keys(const char *text, char names[][64])
{
    const char *p = strstr(text, "\n## Configuration\n"), *end;
    size_t n = 0;
    int in_table = 0;

    if (p == NULL)
        return 0;
    end = strstr(p + 1, "\n## ");
    for (p = strchr(p + 1, '\n') + 1; p && (!end || p < end);) {
        const char *nl = strchr(p, '\n');

        if (*p == '|') {
            const char *cell_end = strchr(p + 1, '|');

            in_table = 1;
            for (const char *q = p; q < cell_end;) {
                const char *a = memchr(q, '`', (size_t)(cell_end - q)), *b;

                if (a == NULL)
                    break;
                b = memchr(a + 1, '`', (size_t)(cell_end - a - 1));
                if (b == NULL)
                    break;
                if (n < MAXNAMES && b - a - 1 < 64)
                    snprintf(names[n++], 64, "%.*s", (int)(b - a - 1), a + 1);
                q = b + 1;
            }
        } else if (in_table) {
            break;
        }
        p = nl ? nl + 1 : NULL;
    }
    return n;
}

/* tlspolicyd.conf(5): ".TP" then ".B name" in the KEYS section. */
static size_t man_keys(const char *text, char names[][64])
{
    const char *p = strstr(text, "\n.SH KEYS\n"), *end;
    size_t n = 0;

    if (p == NULL)
        return 0;
    end = strstr(p + 1, "\n.SH ");
    for (p = strstr(p, "\n.TP\n.B "); p && (!end || p < end); p = strstr(p + 1, "\n.TP\n.B ")) {
        const char *name = p + 8;
        size_t len = strcspn(name, " \n");

        if (n < MAXNAMES && len < 64)
            snprintf(names[n++], 64, "%.*s", (int)len, name);
    }
    return n;
}

/* README: the keys named between "Only a restart changes" and the next ';'. */
static size_t readme_restart_keys(const char *text, char names[][64])
{
    const char *p = strstr(text, "Only a restart changes"), *end, *b;
    size_t n = 0;

    if (p == NULL || (end = strchr(p, ';')) == NULL)
        return 0;
    for (; (p = memchr(p, '`', (size_t)(end - p))) != NULL; p = b + 1) {
        b = memchr(p + 1, '`', (size_t)(end - p - 1));
        if (b == NULL)
            break;
        if (n < MAXNAMES && b - p - 1 < 64)
            snprintf(names[n++], 64, "%.*s", (int)(b - p - 1), p + 1);
    }
    return n;
}

static void check_restart_only(const char *path)
{
    static char names[MAXNAMES][64];
    const char *label = "README.md restart-only keys";
    char *text = slurp(path);
    size_t n, nflagged = 0;

    if (!check_true(label, "readable", text != NULL))
        return;
    n = readme_restart_keys(text, names);
    for (const struct config_key_doc *k = config_keys(); k->name; k++) {
        nflagged += k->restart_only != 0;
        if (!check_true(label, "lists the key iff it is flagged",
                        !k->restart_only == !listed(names, n, k->name)))
            printf("%s: restart_only %d in the key table\n", k->name, k->restart_only);
    }
    check_true(label, "lists each key once, and only keys", n == nflagged && n > 0);
    free(text);
}

static void check_doc(const char *label, const char *path,
                      size_t (*extract)(const char *, char[][64]))
{
    static char names[MAXNAMES][64];
    char *text = slurp(path);
    size_t n;

    if (!check_true(label, "readable", text != NULL)) {
        printf("%s\n", path);
        return;
    }
    n = extract(text, names);
    check_true(label, "lists keys", n > 10);
    for (const struct config_key_doc *k = config_keys(); k->name; k++)
        if (!check_true(label, "documents every key", listed(names, n, k->name)))
            printf("%s is not documented in %s\n", k->name, path);
    for (size_t i = 0; i < n; i++)
        if (!check_true(label, "documents only real keys", known(names[i])))
            printf("%s in %s is not a key the parser knows\n", names[i], path);
    free(text);
}

int main(void)
{
    check_doc("README.md", SOURCE_DIR "/README.md", readme_keys);
    check_doc("tlspolicyd.conf.5", SOURCE_DIR "/doc/tlspolicyd.conf.5", man_keys);
    check_restart_only(SOURCE_DIR "/README.md");
    return check_summary("test_confdoc");
}
