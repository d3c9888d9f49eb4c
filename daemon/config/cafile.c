/*
 * CA bundles in memory: read a PEM bundle file once, check that it holds a certificate,
 * keep its bytes, its parsed chain (for mbedTLS) and, built on first use, its OpenSSL
 * certificate store (for libcurl's transfers). The bundle owns all three; references are
 * counted (see cafile.h).
 */
#include "cafile.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/error.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>

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
    X509_STORE *store;   /* cafile_x509_store(): NULL until built, or when it failed */
    int store_tried;     /* built or failed once: not tried again */
    char store_why[160]; /* why OpenSSL could not read the bundle */
};

static void cafile_free(struct cafile *ca)
{
    mbedtls_x509_crt_free(&ca->chain);
    X509_STORE_free(ca->store);
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

/*
 * The store as libcurl 7.88 builds it from a CURLOPT_CAINFO_BLOB at every handshake
 * (load_cacert_from_memory and populate_x509_store in lib/vtls/openssl.c): every certificate
 * and CRL of the PEM bundle; a bundle OpenSSL refuses, or in which it finds nothing, fails
 * as a whole; the flags TRUSTED_FIRST and PARTIAL_CHAIN. Here it is built once.
 */
static X509_STORE *build_store(struct cafile *ca)
{
    X509_STORE *store = X509_STORE_new();
    BIO *bio = ca->len <= INT32_MAX ? BIO_new_mem_buf(ca->pem, (int)ca->len) : NULL;
    STACK_OF(X509_INFO) *inf = NULL;
    int count = 0;

    ERR_clear_error();
    if (store != NULL && bio != NULL)
        inf = PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL);
    for (int i = 0; inf != NULL && i < sk_X509_INFO_num(inf); i++) {
        X509_INFO *it = sk_X509_INFO_value(inf, i);

        if ((it->x509 != NULL && !X509_STORE_add_cert(store, it->x509)) ||
            (it->crl != NULL && !X509_STORE_add_crl(store, it->crl))) {
            count = 0;
            break;
        }
        count += (it->x509 != NULL) + (it->crl != NULL);
    }
    if (count == 0) {
        unsigned long e = ERR_peek_last_error();

        snprintf(ca->store_why, sizeof(ca->store_why), "CA file %s: OpenSSL cannot use it: %s",
                 ca->path, e ? ERR_reason_error_string(e) : "no certificate");
        X509_STORE_free(store);
        store = NULL;
    } else {
        X509_STORE_set_flags(store, X509_V_FLAG_TRUSTED_FIRST | X509_V_FLAG_PARTIAL_CHAIN);
    }
    ERR_clear_error();
    sk_X509_INFO_pop_free(inf, X509_INFO_free);
    BIO_free(bio);
    return store;
}

X509_STORE *cafile_x509_store(struct cafile *ca, const char **why)
{
    if (!ca->store_tried) {
        ca->store_tried = 1;
        ca->store = build_store(ca);
    }
    *why = ca->store ? NULL : ca->store_why;
    return ca->store;
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
