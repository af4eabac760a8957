/*
 * Session keys of DHCP and DHCPv6 exchanges: by transaction, not by 5-tuple.
 *
 * A client's broadcast or multicast request and the server's unicast reply
 * travel between different addresses, and one client's successive exchanges
 * (discover, renew, release) reuse the same ports: keyed by 5-tuple, one
 * exchange is cut in two and different exchanges are merged. A DHCP client
 * is named by its hardware address (chaddr; its IP address changes
 * mid-exchange), and all its messages within the idle timeout are one
 * session: clients may take a new transaction id for the REQUEST that
 * follows an OFFER. A DHCPv6 exchange is one transaction (RFC 8415 gives
 * each its own id) of a client named by its address, which it sends from and
 * is answered on. Key side 0 is the client's.
 *
 *   | zero (3) | hlen | chaddr (hlen bytes, zero-padded to 16) | zero (12) |   DHCP
 *   | xid (3) | zero (13) | client address (16) |   DHCPv6
 *   | client port (2) | server port (2) | 17 | IP version | VLANs (4) | 0 | FPC_KEY_TRANSACTION |
 *
 * The last byte keeps these keys apart from 5-tuple keys, whose last two bytes
 * are zero. Relayed messages (server port on both ends) stay keyed by 5-tuple.
 * The session table reports such a session under the endpoints of its first
 * packet (session.c), as a 5-tuple session would be. Pure computation on the
 * decoder's bytes: runs without the GIL, allocates nothing.
 */
#include <string.h>

#include "decode.h"

#define PROTO_UDP 17
#define DHCP_SERVER 67
#define DHCP_CLIENT 68
#define DHCP6_CLIENT 546
#define DHCP6_SERVER 547

#define DHCP_MIN 240   /* fixed fields (236) and the magic cookie */
#define DHCP_HLEN 2    /* offset of the hardware address length */
#define DHCP_CHADDR 28 /* offset of the client hardware address (16 bytes, hlen used) */
#define DHCP_COOKIE 236
#define DHCP6_RELAY_FORW 12 /* first relay message type; relays are not keyed here */

static void
put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* 1 when sent client to server, 0 server to client, -1 neither. */
static int
direction(const FpcDecoded *row, uint16_t client, uint16_t server)
{
    if (row->sport == client && row->dport == server) {
        return 1;
    }
    return row->sport == server && row->dport == client ? 0 : -1;
}

static int
is_dhcp(const uint8_t *m, uint32_t len)
{
    static const uint8_t cookie[4] = {0x63, 0x82, 0x53, 0x63};

    return len >= DHCP_MIN && (m[0] == 1 || m[0] == 2) && memcmp(m + DHCP_COOKIE, cookie, 4) == 0;
}

/*
 * Whether chaddr names the client: hlen bytes (1 to 16), not all zero. The
 * bytes past hlen are padding, which some stacks leave dirty. Clients that
 * send no hardware address (hlen 0, as over InfiniBand) stay keyed by 5-tuple.
 */
static int
names_client(const uint8_t *m)
{
    uint8_t hlen = m[DHCP_HLEN];

    if (hlen > 16) {
        return 0;
    }
    for (uint8_t i = 0; i < hlen; i++) {
        if (m[DHCP_CHADDR + i]) {
            return 1;
        }
    }
    return 0;
}

int
fpc_key_transaction(FpcDecoded *row, const uint8_t *pkt, int key_vlan)
{
    const uint8_t *m = pkt + row->payload_offset;
    uint32_t len = row->payload_len;
    uint8_t *k = row->key;
    int up;

    /* payload_offset is clipped to 16 bits: past that, m is not the payload */
    if (row->proto != PROTO_UDP || (row->frag & FPC_FRAG_NONFIRST) ||
        row->payload_offset == UINT16_MAX) {
        return 0;
    }
    if (row->ip_version == 4) {
        up = direction(row, DHCP_CLIENT, DHCP_SERVER);
        if (up < 0 || !is_dhcp(m, len) || !names_client(m)) {
            return 0;
        }
        memset(k, 0, FPC_KEY_LEN);
        k[3] = m[DHCP_HLEN]; /* aabbcc (hlen 3) is not aabbcc000000 (hlen 6) */
        memcpy(k + 4, m + DHCP_CHADDR, m[DHCP_HLEN]);
        put_be16(k + 32, DHCP_CLIENT);
        put_be16(k + 34, DHCP_SERVER);
    } else if (row->ip_version == 6) {
        up = direction(row, DHCP6_CLIENT, DHCP6_SERVER);
        if (up < 0 || len < 4 || m[0] == 0 || m[0] >= DHCP6_RELAY_FORW) {
            return 0;
        }
        memset(k, 0, FPC_KEY_LEN);
        memcpy(k, m + 1, 3);
        memcpy(k + 16, up ? row->src : row->dst, 16);
        put_be16(k + 32, DHCP6_CLIENT);
        put_be16(k + 34, DHCP6_SERVER);
    } else {
        return 0;
    }
    k[36] = PROTO_UDP;
    k[37] = row->ip_version;
    put_be16(k + 38, key_vlan && row->vlan_count > 0 ? row->vlan[0] : 0);
    put_be16(k + 40, key_vlan && row->vlan_count > 1 ? row->vlan[1] : 0);
    k[43] = FPC_KEY_TRANSACTION;
    row->reverse = (uint8_t)!up;
    return 1;
}
