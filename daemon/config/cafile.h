/*
 * CA bundles held in memory (issue 10 section 3). A bundle file (sts_ca_file, probe_ca_file,
 * the system bundle by default) is read once, while the daemon still runs as the user that
 * started it, checked to hold at least one PEM certificate, and kept: its bytes, the
 * certificates parsed once by mbedTLS for the MX probes, and an OpenSSL store built once for
 * libcurl's policy fetches (before, libcurl re-parsed the whole bundle at every handshake). A
 * struct cafile is reference counted: each service and each transfer in flight holds a
 * reference, so a SIGHUP can put a new bundle in place while work started on the old one
 * finishes with it.
 */
#ifndef DAEMON_CAFILE_H
#define DAEMON_CAFILE_H

#include <stddef.h>

#include <mbedtls/x509_crt.h>
#include <openssl/types.h>

struct config;
struct cafile;

/* The system bundle (Debian's ca-certificates), used when a *_ca_file key is empty. */
#define CAFILE_SYSTEM "/etc/ssl/certs/ca-certificates.crt"
/* Largest bundle read: Debian's system bundle is about 200 KiB. */
#define CAFILE_MAX_BYTES (16u << 20)

/*
 * cafile_load - read path (NULL or "": CAFILE_SYSTEM) into memory and parse it. Returns a
 * bundle with one reference, or NULL with a one-line reason naming the file in err: it
 * cannot be opened or read, is larger than CAFILE_MAX_BYTES, or holds no PEM certificate
 * that mbedTLS can parse. A bundle in which only some certificates parse is accepted; how
 * many did not is in cafile_unparsed().
 */
struct cafile *cafile_load(const char *path, char *err, size_t errlen);

/* cafile_ref - one more reference to ca; returns ca. cafile_unref - drop one (NULL: no-op);
 * the last one frees the bytes and the chain. */
struct cafile *cafile_ref(struct cafile *ca);
void cafile_unref(struct cafile *ca);

/* cafile_path - the file the bundle came from (owned by ca). */
const char *cafile_path(const struct cafile *ca);

/* cafile_pem - the file's bytes (owned by ca, NUL-terminated); *len excludes the NUL. */
const char *cafile_pem(const struct cafile *ca, size_t *len);

/* cafile_chain - the certificates parsed once by mbedTLS (owned by ca; valid while a
 * reference is held). Not const because mbedtls_ssl_conf_ca_chain() takes a plain pointer. */
mbedtls_x509_crt *cafile_chain(struct cafile *ca);

/* cafile_count - certificates parsed; cafile_unparsed - PEM blocks mbedTLS could not parse. */
unsigned cafile_count(const struct cafile *ca);
unsigned cafile_unparsed(const struct cafile *ca);

/*
 * cafile_x509_store - the bundle as an OpenSSL certificate store (owned by ca; valid while
 * a reference is held; take X509_STORE_up_ref() to give it to an SSL_CTX), built on the
 * first call exactly as libcurl builds one from the bundle's bytes (CURLOPT_CAINFO_BLOB):
 * every certificate and CRL, flags X509_V_FLAG_TRUSTED_FIRST and X509_V_FLAG_PARTIAL_CHAIN.
 * NULL when OpenSSL refuses the bundle (a PEM block it cannot read fails the whole bundle,
 * as it did in libcurl), with a one-line reason naming the file in *why. Not thread-safe:
 * one thread (the loop's) calls it.
 */
X509_STORE *cafile_x509_store(struct cafile *ca, const char **why);

/*
 * cafile_check_config - what start-up will load: sts_ca_file and probe_ca_file (each the
 * system bundle when empty). 0, or -1 with a one-line reason naming the key and the file.
 * For "tlspolicyd -t".
 */
int cafile_check_config(const struct config *cfg, char *err, size_t errlen);

#endif
