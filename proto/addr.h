/*
 * Which IP addresses a policy fetch may connect to. RFC 8461 leaves it to the sender; the
 * project refuses (SPEC section 7) every address that is not globally routable unicast:
 * loopback, private (RFC 1918, RFC 4193), shared (RFC 6598), link-local, multicast,
 * documentation, benchmarking, reserved and unspecified ranges (the IANA special-purpose
 * registries, RFC 6890), and IPv4-mapped IPv6 forms of those.
 */
#ifndef PROTO_ADDR_H
#define PROTO_ADDR_H

#include <stddef.h>
#include <stdint.h>

/*
 * addr_special - for addr (4 bytes IPv4 or 16 bytes IPv6, network order, alen 4 or 16), the
 * name of the special range it is in ("loopback", "private", ...), or NULL for an ordinary
 * global unicast address. alen other than 4 or 16 gives "invalid".
 */
const char *addr_special(const uint8_t *addr, size_t alen);

#endif
