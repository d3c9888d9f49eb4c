/*
 * TLS for the MX probe with mbedTLS 2.28: the client configuration shared by all
 * connections (random generator, CA bundle, TLS 1.2 at least, RFC 8996), each connection's
 * session over a memory BIO (reads from the connection's receive buffer, writes through
 * uv_write), and the judgement of the server's certificate: PKIX against the CA bundle for
 * the MX host name (RFC 6125), DANE-EE and DANE-TA against the entry's TLSA records
 * (RFC 7672 3.1). The service owns the configuration, each connection its session.
 */
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/sha256.h>
#include <mbedtls/sha512.h>
#include <mbedtls/x509_crt.h>
#include <stdio.h>
#include <string.h>

#include "cafile.h"
#include "probe_int.h"

/* mbedTLS BIO: writes go straight to uv_write (a copy each), so they never block. */
static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct conn *c = ctx;

    if (probe_smtp_write(c, buf, len) < 0)
        return MBEDTLS_ERR_NET_SEND_FAILED;
    return (int)len;
}

/* mbedTLS BIO: reads take what the connection has buffered, else "want read". */
static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct conn *c = ctx;
    size_t n = c->rx_len - c->rx_off;

    if (n == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (n > len)
        n = len;
    memcpy(buf, c->rx + c->rx_off, n);
    c->rx_off += n;
    return (int)n;
}

void probe_tls_error(char *out, size_t n, int rc)
{
    char buf[160];

    mbedtls_strerror(rc, buf, sizeof(buf));
    snprintf(out, n, "%s (-0x%04x)", buf, (unsigned)-rc);
}

int probe_tls_write(struct conn *c, const char *p, size_t n)
{
    size_t off = 0;

    while (off < n) {
        int rc = mbedtls_ssl_write(&c->ssl, (const unsigned char *)p + off, n - off);

        if (rc < 0) {
            char err[200];

            probe_tls_error(err, sizeof(err), rc);
            probe_why(c, "TLS write to %s failed: %s", c->addr, err);
            return -1;
        }
        off += (size_t)rc;
    }
    return 0;
}

int probe_tls_begin(struct conn *c)
{
    if (mbedtls_ssl_setup(&c->ssl, &c->svc->conf) != 0 ||
        mbedtls_ssl_set_hostname(&c->ssl, c->host) != 0)
        return -1;
    mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
    c->tls = 1;
    return 0;
}

static const char *pkix_failure(uint32_t flags)
{
    if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
        return "not issued by a trusted CA";
    if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH)
        return "not valid for the MX host name";
    if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
        return "expired";
    if (flags & MBEDTLS_X509_BADCERT_FUTURE)
        return "not yet valid";
    if (flags & MBEDTLS_X509_BADCERT_REVOKED)
        return "revoked";
    if (flags &
        (MBEDTLS_X509_BADCERT_BAD_MD | MBEDTLS_X509_BADCERT_BAD_PK | MBEDTLS_X509_BADCERT_BAD_KEY))
        return "signed with an unacceptable algorithm or key";
    if (flags & (MBEDTLS_X509_BADCERT_KEY_USAGE | MBEDTLS_X509_BADCERT_EXT_KEY_USAGE |
                 MBEDTLS_X509_BADCERT_NS_CERT_TYPE))
        return "not meant for a TLS server";
    return "failed verification";
}

/* RFC 6698 2.1.2-2.1.3 and RFC 7672 3.1: does crt match one record's selector and type? */
static int tlsa_match(const mbedtls_x509_crt *crt, const struct tlsa_rec *t)
{
    const unsigned char *p;
    size_t n;
    unsigned char md[64];

    if (t->selector == 0) {
        p = crt->raw.p;
        n = crt->raw.len;
    } else if (t->selector == 1) {
        p = crt->pk_raw.p;
        n = crt->pk_raw.len;
    } else {
        return 0;
    }
    if (p == NULL || n == 0)
        return 0;
    switch (t->mtype) {
    case 0:
        return n == t->len && memcmp(p, t->data, n) == 0;
    case 1:
        return t->len == 32 && mbedtls_sha256_ret(p, n, md, 0) == 0 && memcmp(md, t->data, 32) == 0;
    case 2:
        return t->len == 64 && mbedtls_sha512_ret(p, n, md, 0) == 0 && memcmp(md, t->data, 64) == 0;
    }
    return 0;
}

/*
 * RFC 7672 3.1.2: a CA certificate of the presented chain that matches t is the only trust
 * anchor, and the chain must verify up to it for the MX host name (3.2.2) within its dates.
 */
static int dane_ta_match(const mbedtls_x509_crt *peer, const struct tlsa_rec *t, const char *host)
{
    for (const mbedtls_x509_crt *ca = peer->next; ca != NULL; ca = ca->next) {
        mbedtls_x509_crt ta;
        uint32_t flags = 0;
        int ok;

        if (!tlsa_match(ca, t))
            continue;
        mbedtls_x509_crt_init(&ta);
        ok = mbedtls_x509_crt_parse_der(&ta, ca->raw.p, ca->raw.len) == 0 &&
             mbedtls_x509_crt_verify((mbedtls_x509_crt *)peer, &ta, NULL, host, &flags, NULL,
                                     NULL) == 0;
        mbedtls_x509_crt_free(&ta);
        if (ok)
            return 1;
    }
    return 0;
}

/*
 * DANE (RFC 7672 3.1): DANE-EE(3) matches the server's own certificate, and names and dates
 * do not matter (3.1.1). DANE-TA(2) matches a CA certificate the server presented in its
 * chain (3.1.2: servers must include the TA); see dane_ta_match(). A TA given only as a
 * bare public key outside the chain is not supported.
 * Returns 1 on a match with a description in out.
 */
static int dane_check(struct conn *c, const struct entry *e, char *out, size_t n)
{
    const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&c->ssl);

    if (peer == NULL)
        return 0;
    for (size_t i = 0; i < e->ntlsa; i++) {
        const struct tlsa_rec *t = &e->tlsa[i];

        if (t->usage == 3 && tlsa_match(peer, t)) {
            snprintf(out, n, "DANE-EE %u %u %u", t->usage, t->selector, t->mtype);
            return 1;
        }
        if (t->usage == 2 && dane_ta_match(peer, t, c->host)) {
            snprintf(out, n, "DANE-TA %u %u %u", t->usage, t->selector, t->mtype);
            return 1;
        }
    }
    return 0;
}

/* The handshake completed: what the session is, and whether PKIX and DANE accept it. */
static void judge(struct conn *c)
{
    uint32_t flags = mbedtls_ssl_get_verify_result(&c->ssl);
    char dane[40] = "";
    const char *v = mbedtls_ssl_get_version(&c->ssl), *cs = mbedtls_ssl_get_ciphersuite(&c->ssl);

    c->res.tls_ok = 1;
    snprintf(c->res.tls_version, sizeof(c->res.tls_version), "%s", v ? v : "");
    snprintf(c->res.cipher, sizeof(c->res.cipher), "%s", cs ? cs : "");
    /* RFC 6125 via mbedTLS: the chain to the CA bundle, and the MX host name in SAN/CN. */
    c->res.pkix_ok = flags == 0;
    c->res.ntlsa = c->e ? (unsigned)c->e->ntlsa : 0;
    if (c->e != NULL && c->e->ntlsa > 0)
        c->res.dane_ok = dane_check(c, c->e, dane, sizeof(dane));
    probe_why(c, "%s %s; PKIX %s%s; DANE %s%s; ", c->res.tls_version, c->res.cipher,
              c->res.pkix_ok ? "ok" : "failed: certificate ",
              c->res.pkix_ok ? "" : pkix_failure(flags),
              c->res.ntlsa == 0 ? "not tried (no TLSA records)"
              : c->res.dane_ok  ? "ok: "
                                : "failed: no TLSA record matched",
              c->res.dane_ok ? dane : "");
}

int probe_tls_handshake(struct conn *c)
{
    int rc = mbedtls_ssl_handshake(&c->ssl);

    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
        return 0;
    if (rc != 0) {
        char err[200];

        probe_tls_error(err, sizeof(err), rc);
        probe_why(c, "TLS handshake with %s failed: %s", c->addr, err);
        return -1;
    }
    judge(c);
    return 1;
}

/* Reason into err when the return value is below 1: mbedTLS's, or "the server closed". */
int probe_tls_read(struct conn *c, uint8_t *buf, size_t len, char *err, size_t errlen)
{
    int n = mbedtls_ssl_read(&c->ssl, buf, len);

    if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE)
        return 0;
    if (n > 0)
        return n;
    if (n == 0 || n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
        snprintf(err, errlen, "the server closed the TLS session");
    else
        probe_tls_error(err, errlen, n);
    return -1;
}

int probe_tls_init(struct probe_svc *svc, const struct probe_opts *opts, char *err, size_t errlen)
{
    static const char pers[] = "tlspolicyd probe";
    char msg[160];
    int rc;

    mbedtls_entropy_init(&svc->entropy);
    mbedtls_ctr_drbg_init(&svc->drbg);
    mbedtls_ssl_config_init(&svc->conf);
    rc = mbedtls_ctr_drbg_seed(&svc->drbg, mbedtls_entropy_func, &svc->entropy,
                               (const unsigned char *)pers, sizeof(pers) - 1);
    if (rc != 0) {
        mbedtls_strerror(rc, msg, sizeof(msg));
        snprintf(err, errlen, "mbedTLS random generator: %s", msg);
        return -1;
    }
    /* The bundle is parsed once (cafile.c), before the daemon gives up root. */
    svc->ca = opts->ca ? cafile_ref(opts->ca)
                       : cafile_load(opts->ca_file && opts->ca_file[0] ? opts->ca_file
                                                                       : PROBE_SYSTEM_CA_FILE,
                                     err, errlen);
    if (svc->ca == NULL)
        return -1;
    rc = mbedtls_ssl_config_defaults(&svc->conf, MBEDTLS_SSL_IS_CLIENT,
                                     MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0) {
        mbedtls_strerror(rc, msg, sizeof(msg));
        snprintf(err, errlen, "mbedTLS configuration: %s", msg);
        return -1;
    }
    /*
     * The handshake completes whatever the certificate; PKIX and DANE are judged afterwards
     * from the verification result and the chain, so the probe can report both (and the
     * EHLO after STARTTLS) whichever fails.
     */
    mbedtls_ssl_conf_authmode(&svc->conf, MBEDTLS_SSL_VERIFY_OPTIONAL);
    mbedtls_ssl_conf_ca_chain(&svc->conf, cafile_chain(svc->ca), NULL);
    mbedtls_ssl_conf_rng(&svc->conf, mbedtls_ctr_drbg_random, &svc->drbg);
    /* RFC 8996: TLS 1.2 at least. */
    mbedtls_ssl_conf_min_version(&svc->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    return 0;
}

void probe_tls_free(struct probe_svc *svc)
{
    mbedtls_ssl_config_free(&svc->conf);
    cafile_unref(svc->ca);
    mbedtls_ctr_drbg_free(&svc->drbg);
    mbedtls_entropy_free(&svc->entropy);
}

void probe_set_ca(struct probe_svc *svc, struct cafile *ca)
{
    /*
     * Connections point at svc->conf, which points at the chain; mbedTLS 2.28 reads the
     * chain only within the handshake step that verifies the peer (no restartable ECC in
     * Debian's build), and the loop runs one step at a time, so no step sees the old chain
     * after this returns and the old one may go.
     */
    cafile_ref(ca);
    mbedtls_ssl_conf_ca_chain(&svc->conf, cafile_chain(ca), NULL);
    cafile_unref(svc->ca);
    svc->ca = ca;
}
