/*
 * Domain key normalisation for lookups (SPEC section 4): lower case, one trailing dot
 * removed, U-labels converted to A-labels (IDNA2008 via libidn2, RFC 5891), length and
 * label checks (RFC 1035 section 2.3.4), LDH syntax (RFC 5890 section 2.3.1). Keys that
 * start with '.' are Postfix's parent-domain probes and are reported as such.
 */
#ifndef PROTO_DOMAIN_H
#define PROTO_DOMAIN_H

#include <stddef.h>

/* RFC 1035 2.3.4: 255 octets on the wire, so at most 253 characters in text form. */
#define DOMAIN_MAX 253
#define DOMAIN_LABEL_MAX 63

enum {
    DOMAIN_OK = 0,
    DOMAIN_PARENT = 1,    /* a ".parent" probe key; out holds the normalised parent */
    DOMAIN_EINVAL = -1,   /* not a domain name */
    DOMAIN_ETOOLONG = -2, /* name or label too long */
    DOMAIN_EIDN = -3,     /* non-ASCII input that is not a valid IDN */
};

/*
 * domain_normalize - normalise the key in[0..len) into out (DOMAIN_MAX + 1 bytes, NUL
 * terminated). For DOMAIN_PARENT, out holds the name without its leading dot.
 * Returns DOMAIN_OK, DOMAIN_PARENT or a negative DOMAIN_E* code with a static reason in
 * *why. libidn2 allocates internally for non-ASCII input; that memory is freed before return.
 */
int domain_normalize(const char *in, size_t len, char out[DOMAIN_MAX + 1], const char **why);

/*
 * domain_parent - the name one label up ("b.c" for "a.b.c"), pointing into name, or NULL
 * when name has a single label.
 */
const char *domain_parent(const char *name);

#endif
