/*
 * Domain key normalisation: what a socketmap key must look like before the daemon spends
 * any work on it. ASCII keys are checked and lower-cased here; keys with non-ASCII bytes
 * go through libidn2 (IDNA2008 with UTS #46 non-transitional mapping, as browsers and
 * modern MTAs do) and the resulting A-labels are checked the same way.
 */
#include "domain.h"

#include <idn2.h>
#include <stdlib.h>
#include <string.h>

/* Longest raw key worth handing to libidn2; anything longer cannot become a 253-byte name. */
#define RAW_MAX 1024

static int ldh(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* Check and lower-case an ASCII name in place; name has no trailing dot. */
static int check_ascii(char *name, const char **why)
{
    size_t len = strlen(name), label = 0;
    int all_digits_label = 1;

    if (len == 0) {
        *why = "empty domain name";
        return DOMAIN_EINVAL;
    }
    if (len > DOMAIN_MAX) {
        *why = "domain name longer than 253 characters";
        return DOMAIN_ETOOLONG;
    }
    for (size_t i = 0; i <= len; i++) {
        int c = (unsigned char)name[i];

        if (c == '.' || c == '\0') {
            /* RFC 1035 2.3.1 and RFC 5890 2.3.1: labels are 1 to 63 LDH characters that
             * neither start nor end with a hyphen. */
            if (label == 0) {
                *why = "empty label in domain name";
                return DOMAIN_EINVAL;
            }
            if (name[i - 1] == '-' || name[i - label] == '-') {
                *why = "label starts or ends with a hyphen";
                return DOMAIN_EINVAL;
            }
            if (c == '\0')
                break;
            label = 0;
            all_digits_label = 1;
            continue;
        }
        if (c >= 'A' && c <= 'Z')
            name[i] = (char)(c - 'A' + 'a');
        else if (!ldh(c)) {
            *why = "domain name contains a character other than letters, digits, '-' and '.'";
            return DOMAIN_EINVAL;
        }
        if (!(c >= '0' && c <= '9'))
            all_digits_label = 0;
        if (++label > DOMAIN_LABEL_MAX) {
            *why = "label longer than 63 characters";
            return DOMAIN_ETOOLONG;
        }
    }
    /* RFC 3696 2: a top-level label is never all-numeric; this refuses IPv4 addresses. */
    if (all_digits_label) {
        *why = "last label is all digits (an address, not a domain)";
        return DOMAIN_EINVAL;
    }
    return DOMAIN_OK;
}

int domain_normalize(const char *in, size_t len, char out[DOMAIN_MAX + 1], const char **why)
{
    char raw[RAW_MAX + 1];
    int parent = 0, non_ascii = 0, root_dot = 0, rc;

    if (len > 0 && in[0] == '.') {
        parent = 1;
        in++;
        len--;
    }
    if (len > 0 && in[len - 1] == '.') {
        len--;
        root_dot = 1;
    }
    if (len == 0) {
        *why = "empty domain name";
        return DOMAIN_EINVAL;
    }
    if (len > RAW_MAX) {
        *why = "domain name longer than 253 characters";
        return DOMAIN_ETOOLONG;
    }
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '\0') {
            *why = "domain name contains a NUL byte";
            return DOMAIN_EINVAL;
        }
        if ((unsigned char)in[i] >= 0x80)
            non_ascii = 1;
    }
    memcpy(raw, in, len);
    raw[len] = '\0';

    if (non_ascii) {
        /* RFC 5891 5: convert U-labels to A-labels; libidn2 also rejects invalid UTF-8. */
        char *ace = NULL;

        rc = idn2_to_ascii_8z(raw, &ace, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
        if (rc != IDN2_OK) {
            /* idn2_strerror() texts are static. A name or label over the RFC 1035 limits
             * is DOMAIN_ETOOLONG, as it is for ASCII input. */
            *why = idn2_strerror(rc);
            if (rc == IDN2_TOO_BIG_DOMAIN || rc == IDN2_TOO_BIG_LABEL ||
                rc == IDN2_PUNYCODE_BIG_OUTPUT)
                return DOMAIN_ETOOLONG;
            return DOMAIN_EIDN;
        }
        if (strlen(ace) > DOMAIN_MAX) {
            idn2_free(ace);
            *why = "domain name longer than 253 characters after IDN conversion";
            return DOMAIN_ETOOLONG;
        }
        strcpy(raw, ace);
        idn2_free(ace);
        /* UTS #46 maps the ideographic full stop (U+3002) and its kin to '.', so a
         * trailing root dot may appear only now. */
        if (!root_dot && raw[0] != '\0' && raw[strlen(raw) - 1] == '.')
            raw[strlen(raw) - 1] = '\0';
    }

    if (strlen(raw) > DOMAIN_MAX) {
        *why = "domain name longer than 253 characters";
        return DOMAIN_ETOOLONG;
    }
    rc = check_ascii(raw, why);
    if (rc != DOMAIN_OK)
        return rc;
    memcpy(out, raw, strlen(raw) + 1);
    return parent ? DOMAIN_PARENT : DOMAIN_OK;
}

const char *domain_parent(const char *name)
{
    const char *dot = strchr(name, '.');

    return dot ? dot + 1 : NULL;
}
