/*
 * Which IP addresses a policy fetch may connect to. RFC 8461 leaves it to the sender; the
 * project refuses (SPEC section 7) every address that the IANA IPv4 and IPv6
 * Special-Purpose Address Registries (RFC 6890) do not mark globally reachable, multicast,
 * and IPv6 outside global unicast 2000::/3. IPv6 forms that carry an IPv4 address
 * (IPv4-mapped ::ffff:0:0/96, IPv4-translated ::ffff:0:0:0/96, NAT64 64:ff9b::/96) are
 * judged by that IPv4 address; the local-use NAT64 prefix 64:ff9b:1::/48 is refused.
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
