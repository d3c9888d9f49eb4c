/*
 * The MX walk's reading of answers, for rtls.c and cli/probe_cmd.c: MX records (RFC 5321
 * 5.1, RFC 7505 null MX passed on as ""), A and AAAA addresses as text, and DANE TLSA
 * records as probe.c takes them. Pure functions over answers the resolver owns.
 */
#include "mxhosts.h"

#include <sys/socket.h>

#include "dns.h"

unsigned mxhosts_each(const struct resolver_answer *ans, mxhosts_fn fn, void *arg)
{
    struct dns_iter it;
    struct dns_rr rr;
    const char *why = NULL;
    unsigned n = 0;

    if (dns_iter_init(&it, ans->msg, ans->len, &why) < 0)
        return 0;
    while (dns_answer_next(&it, ans->info.final, DNS_TYPE_MX, &rr, &why) == 1) {
        char host[DNS_NAME_MAX + 1];
        uint16_t pref;

        if (dns_rdata_mx(ans->msg, ans->len, &rr, &pref, host, &why) < 0)
            continue;
        n++;
        fn(arg, host, pref);
    }
    return n;
}

unsigned mxhosts_addrs(const struct resolver_answer *ans, char (*out)[INET6_ADDRSTRLEN],
                       unsigned max)
{
    struct dns_iter it;
    struct dns_rr rr;
    const char *why = NULL;
    unsigned n = 0;

    if (ans->info.outcome != DNS_OUT_RECORDS || dns_iter_init(&it, ans->msg, ans->len, &why) < 0)
        return 0;
    while (n < max && dns_answer_next(&it, ans->info.final, ans->qtype, &rr, &why) == 1) {
        uint8_t a[16];
        size_t alen;

        if (dns_rdata_addr(&rr, a, &alen, &why) < 0)
            continue;
        inet_ntop(alen == 4 ? AF_INET : AF_INET6, a, out[n++], INET6_ADDRSTRLEN);
    }
    return n;
}

void mxhosts_tlsa(struct probe_tlsa *out, const struct dane_tlsa *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        out[i].usage = in[i].usage;
        out[i].selector = in[i].selector;
        out[i].mtype = in[i].mtype;
        out[i].data = in[i].data;
        out[i].len = in[i].len;
    }
}
