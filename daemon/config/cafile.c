/*
 * CA bundles in memory: read a PEM bundle file once, check that it holds a certificate,
 * keep its bytes (for libcurl's CURLOPT_CAINFO_BLOB) and its parsed chain (for mbedTLS).
 * The bundle owns both; references are counted (see cafile.h).
 */
#include "cafile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/error.h>

#include "config.h"
#include "xalloc.h"

/* RFC 7468 2: the label mbedTLS and OpenSSL look for in a PEM certificate bundle. */
#define PEM_CERT_BEGIN "-----BEGIN CERTIFICATE-----"

struct cafile {
    unsigned refs;
    char *path;
    char *pem; /* the file's bytes and a NUL */
    size_t len;
    unsigned count, unparsed;
    mbedtls_x509_crt chain;
};

static void cafile_free(struct cafile *ca)
{
    mbedtls_x509_crt_free(&ca->chain);
    free(ca->pem);
    free(ca->path);
    free(ca);
}

/* Read the whole file into a NUL-terminated buffer; 0, or -1 with the reason in err. */
static int read_file(struct cafile *ca, char *err, size_t errlen)
{
    struct stat st;
    size_t cap, got = 0;
    int fd, rc = -1;

    /* O_NONBLOCK: a FIFO named by mistake must not hang start-up; it is refused below. */
    fd = open(ca->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(err, errlen, "CA file %s: cannot open: %s", ca->path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "CA file %s: not a regular file", ca->path);
        goto done;
    }
    if ((unsigned long long)st.st_size > CAFILE_MAX_BYTES) {
        snprintf(err, errlen, "CA file %s: larger than %u bytes", ca->path, CAFILE_MAX_BYTES);
        goto done;
    }
    /* The size is a hint: a file that grows while read is cut at the cap, then refused. */
    cap = (size_t)st.st_size + 1;
    ca->pem = xmalloc(cap + 1);
    for (;;) {
        ssize_t n = read(fd, ca->pem + got, cap - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "CA file %s: cannot read: %s", ca->path, strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        got += (size_t)n;
        if (got == cap) {
            if (cap > CAFILE_MAX_BYTES) {
                snprintf(err, errlen, "CA file %s: larger than %u bytes", ca->path,
                         CAFILE_MAX_BYTES);
                goto done;
            }
            cap = cap * 2 > CAFILE_MAX_BYTES + 1 ? CAFILE_MAX_BYTES + 1 : cap * 2;
            ca->pem = xrealloc(ca->pem, cap + 1);
        }
    }
    ca->pem[got] = '\0';
    ca->len = got;
    rc = 0;
done:
    close(fd);
    return rc;
}

struct cafile *cafile_load(const char *path, char *err, size_t errlen)
{
    struct cafile *ca = xcalloc(1, sizeof(*ca));
    char msg[128];
    int rc;

    ca->refs = 1;
    ca->path = xstrdup(path && path[0] ? path : CAFILE_SYSTEM);
    mbedtls_x509_crt_init(&ca->chain);
    if (read_file(ca, err, errlen) < 0)
        goto fail;
    /*
     * libcurl's OpenSSL back end reads PEM only (CURLOPT_CAINFO_BLOB); a DER file would pass
     * mbedTLS and then fail every fetch. mbedTLS takes the buffer as PEM only when the
     * length counts the terminating NUL.
     */
    if (memchr(ca->pem, '\0', ca->len) != NULL || strstr(ca->pem, PEM_CERT_BEGIN) == NULL) {
        snprintf(err, errlen, "CA file %s: holds no PEM certificate (" PEM_CERT_BEGIN ")",
                 ca->path);
        goto fail;
    }
    rc = mbedtls_x509_crt_parse(&ca->chain, (const unsigned char *)ca->pem, ca->len + 1);
    if (rc < 0 || ca->chain.raw.p == NULL) {
        if (rc < 0)
            mbedtls_strerror(rc, msg, sizeof(msg));
        else
            snprintf(msg, sizeof(msg), "no certificate could be parsed");
        snprintf(err, errlen, "CA file %s: holds no usable certificate: %s", ca->path, msg);
        goto fail;
    }
    /* A bundle may hold certificates mbedTLS cannot parse (rc counts them); one is enough. */
    ca->unparsed = (unsigned)rc;
    for (const mbedtls_x509_crt *c = &ca->chain; c != NULL && c->raw.p != NULL; c = c->next)
        ca->count++;
    return ca;
fail:
    cafile_free(ca);
    return NULL;
}

struct cafile *cafile_ref(struct cafile *ca)
{
    ca->refs++;
    return ca;
}

void cafile_unref(struct cafile *ca)
{
    if (ca != NULL && --ca->refs == 0)
        cafile_free(ca);
}

const char *cafile_path(const struct cafile *ca)
{
    return ca->path;
}

const char *cafile_pem(const struct cafile *ca, size_t *len)
{
    *len = ca->len;
    return ca->pem;
}

mbedtls_x509_crt *cafile_chain(struct cafile *ca)
{
    return &ca->chain;
}

unsigned cafile_count(const struct cafile *ca)
{
    return ca->count;
}

unsigned cafile_unparsed(const struct cafile *ca)
{
    return ca->unparsed;
}

int cafile_check_config(const struct config *cfg, char *err, size_t errlen)
{
    const struct {
        const char *key, *value;
    } files[] = {{"sts_ca_file", cfg->sts_ca_file}, {"probe_ca_file", cfg->probe_ca_file}};
    char why[512];

    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        struct cafile *ca = cafile_load(files[i].value, why, sizeof(why));

        if (ca == NULL) {
            snprintf(err, errlen, "%s: %s", files[i].key, why);
            return -1;
        }
        cafile_unref(ca);
    }
    return 0;
}
