/*
 * Link-layer decoders: from the first byte of a packet to its IP header.
 *
 * Runs without the GIL on bytes borrowed from the caller (see fastpath.c); all
 * reads go through FpcCursor. Each decoder returns an FPC_STATUS_* value and
 * hands the IP header to ip.c. Nested Ethernet frames (ERSPAN, VXLAN, MPLS
 * pseudowires) re-enter fpc_link_ether with depth + 1; past FPC_MAX_DEPTH the
 * packet is malformed.
 */
#include <string.h>

#include "decode.h"

#define ETH_IPV4 0x0800
#define ETH_VLAN 0x8100
#define ETH_IPV6 0x86dd
#define ETH_MPLS_UC 0x8847
#define ETH_MPLS_MC 0x8848
#define ETH_PPPOE_DISC 0x8863
#define ETH_PPPOE_SESS 0x8864
#define ETH_QINQ 0x88a8
#define ETH_QINQ_OLD 0x9100
#define ETH_MAX_LEN 1500 /* type/length values up to this are 802.3 lengths */

#define PPP_IPV4 0x0021
#define PPP_IPV6 0x0057

static int
status_non_ip(FpcDecoder *d, uint16_t type)
{
    d->row.ethertype = type;
    return FPC_STATUS_NON_IP;
}

/*
 * 802.2 LLC, and SNAP when DSAP = SSAP = 0xaa:
 *
 *   | DSAP (1) | SSAP (1) | control (1) | [SNAP: OUI (3) | ethertype (2)]
 *
 * Only SNAP carries an ethertype; other LLC frames (STP, IS-IS, NetBIOS) are
 * non-IP, and their DSAP stands in for the ethertype (below 0x100, it cannot
 * be confused with one).
 */
static int
decode_llc(FpcDecoder *d, FpcCursor *c, int depth)
{
    const uint8_t *llc = fpc_cursor_take(c, 3);
    uint16_t type;

    if (llc == NULL) {
        return FPC_STATUS_MALFORMED;
    }
    if (llc[0] != 0xaa || llc[1] != 0xaa || llc[2] != 0x03) {
        return status_non_ip(d, llc[0]);
    }
    fpc_cursor_skip(c, 3);
    type = fpc_cursor_be16(c);
    if (c->err) {
        return FPC_STATUS_MALFORMED;
    }
    /* A SNAP header naming another 802.3 length would loop back here: not IP. */
    if (type <= ETH_MAX_LEN) {
        return status_non_ip(d, 0);
    }
    return fpc_link_ethertype(d, c, type, depth);
}

/*
 * MPLS label stack entries, popped down to the one with the S bit:
 *
 *   | label (20) | TC (3) | S (1) | TTL (8) |
 *
 * Below the stack the first nibble tells IPv4 (4), IPv6 (6) or a pseudowire
 * control word (0: four bytes, then an Ethernet frame).
 */
static int
decode_mpls(FpcDecoder *d, FpcCursor *c, int depth)
{
    uint32_t entry = 0;
    uint8_t first;

    d->row.tunnel |= FPC_TUNNEL_MPLS;
    do {
        entry = fpc_cursor_be32(c);
    } while (!c->err && (entry & 0x100) == 0);
    if (c->err || !fpc_cursor_peek(c, 0, &first)) {
        return FPC_STATUS_MALFORMED;
    }
    switch (first >> 4) {
    case 4:
        return fpc_ip_decode(d, c, 4, depth);
    case 6:
        return fpc_ip_decode(d, c, 6, depth);
    case 0:
        fpc_cursor_skip(c, 4);
        return fpc_link_ether(d, c, depth + 1);
    default:
        return status_non_ip(d, ETH_MPLS_UC);
    }
}

int
fpc_link_ppp(FpcDecoder *d, FpcCursor *c, int depth)
{
    uint8_t b0 = 0;
    uint16_t proto;

    /* Optional HDLC address/control 0xff 0x03, then a 1- or 2-byte protocol:
     * a protocol whose first byte is odd was compressed to that one byte. */
    if (fpc_cursor_peek(c, 0, &b0) && b0 == 0xff) {
        fpc_cursor_skip(c, 2);
    }
    if (!fpc_cursor_peek(c, 0, &b0)) {
        return FPC_STATUS_MALFORMED;
    }
    proto = (b0 & 1) ? fpc_cursor_u8(c) : fpc_cursor_be16(c);
    if (c->err) {
        return FPC_STATUS_MALFORMED;
    }
    if (proto == PPP_IPV4) {
        return fpc_ip_decode(d, c, 4, depth);
    }
    if (proto == PPP_IPV6) {
        return fpc_ip_decode(d, c, 6, depth);
    }
    return FPC_STATUS_NON_IP;
}

/*
 * PPPoE session header (RFC 2516), then PPP:
 *
 *   | ver (4) | type (4) | code (8) | session id (16) | length (16) | PPP protocol (16) |
 */
static int
decode_pppoe(FpcDecoder *d, FpcCursor *c, int depth)
{
    uint8_t vertype = fpc_cursor_u8(c);
    uint16_t length;
    int status;

    fpc_cursor_skip(c, 3);
    length = fpc_cursor_be16(c);
    if (c->err || vertype != 0x11) {
        return FPC_STATUS_MALFORMED;
    }
    fpc_cursor_limit(c, length);
    status = fpc_link_ppp(d, c, depth);
    if (status == FPC_STATUS_NON_IP) {
        return status_non_ip(d, ETH_PPPOE_SESS);
    }
    d->row.tunnel |= FPC_TUNNEL_PPPOE;
    return status;
}

/*
 * 802.1Q / 802.1ad tags, each after its TPID (0x8100, 0x88a8 or 0x9100):
 *
 *   | PCP (3) | DEI (1) | VLAN id (12) | next ethertype (16) |
 *
 * Any number of tags is read (each costs 4 bytes, so the loop ends with the
 * packet); the first two ids are kept.
 */
static uint16_t
pop_vlan_tags(FpcDecoder *d, FpcCursor *c, uint16_t type)
{
    uint16_t tci;

    while (!c->err && (type == ETH_VLAN || type == ETH_QINQ || type == ETH_QINQ_OLD)) {
        tci = fpc_cursor_be16(c);
        type = fpc_cursor_be16(c);
        fpc_link_vlan(d, tci & 0x0fff);
        d->row.tunnel |= FPC_TUNNEL_VLAN;
    }
    return type;
}

void
fpc_link_vlan(FpcDecoder *d, uint16_t id)
{
    if (d->row.vlan_count < 2) {
        d->row.vlan[d->row.vlan_count] = id;
    }
    if (d->row.vlan_count < UINT8_MAX) {
        d->row.vlan_count++;
    }
}

int
fpc_link_ethertype(FpcDecoder *d, FpcCursor *c, uint16_t type, int depth)
{
    type = pop_vlan_tags(d, c, type);
    if (c->err) {
        return FPC_STATUS_MALFORMED;
    }
    if (type <= ETH_MAX_LEN) {
        fpc_cursor_limit(c, type);
        return decode_llc(d, c, depth);
    }
    d->row.ethertype = type;
    switch (type) {
    case ETH_IPV4:
        return fpc_ip_decode(d, c, 4, depth);
    case ETH_IPV6:
        return fpc_ip_decode(d, c, 6, depth);
    case ETH_MPLS_UC:
    case ETH_MPLS_MC:
        return decode_mpls(d, c, depth);
    case ETH_PPPOE_SESS:
        return decode_pppoe(d, c, depth);
    default:
        return status_non_ip(d, type);
    }
}

/*
 * Ethernet II / 802.3 header:
 *
 *   | destination MAC (6) | source MAC (6) | ethertype or 802.3 length (2) |
 */
int
fpc_link_ether(FpcDecoder *d, FpcCursor *c, int depth)
{
    const uint8_t *macs;
    uint16_t type;

    if (depth > FPC_MAX_DEPTH) {
        return FPC_STATUS_MALFORMED;
    }
    macs = fpc_cursor_take(c, 12);
    type = fpc_cursor_be16(c);
    if (c->err) {
        return FPC_STATUS_MALFORMED;
    }
    /* The innermost frame's MACs are the hosts'; outer ones belong to the
     * tunnel or mirror that carried them. */
    memcpy(d->row.dst_mac, macs, 6);
    memcpy(d->row.src_mac, macs + 6, 6);
    return fpc_link_ethertype(d, c, type, depth);
}

/*
 * Linux cooked capture v1 (LINKTYPE_LINUX_SLL, 16 bytes):
 *
 *   | packet type (2) | ARPHRD type (2) | address length (2) | address (8) | protocol (2) |
 *
 * Protocol 0x0004 means an 802.2 LLC frame follows instead of an ethertype.
 */
static int
decode_sll(FpcDecoder *d, FpcCursor *c)
{
    uint16_t proto;

    fpc_cursor_skip(c, 14);
    proto = fpc_cursor_be16(c);
    if (c->err) {
        return FPC_STATUS_MALFORMED;
    }
    if (proto == 0x0004) {
        return decode_llc(d, c, 0);
    }
    return fpc_link_ethertype(d, c, proto, 0);
}

/*
 * Linux cooked capture v2 (LINKTYPE_LINUX_SLL2, 20 bytes):
 *
 *   | protocol (2) | reserved (2) | interface index (4) | ARPHRD type (2) |
 *   | packet type (1) | address length (1) | address (8) |
 */
static int
decode_sll2(FpcDecoder *d, FpcCursor *c)
{
    uint16_t proto = fpc_cursor_be16(c);

    fpc_cursor_skip(c, 18);
    if (c->err) {
        return FPC_STATUS_MALFORMED;
    }
    if (proto == 0x0004) {
        return decode_llc(d, c, 0);
    }
    return fpc_link_ethertype(d, c, proto, 0);
}

/*
 * BSD NULL (host byte order of the capturing machine) and OpenBSD LOOP
 * (network byte order): a 4-byte address family, 2 = IPv4, 24/28/30 = IPv6.
 */
static int
decode_null(FpcDecoder *d, FpcCursor *c, int big_endian)
{
    uint32_t family = big_endian ? fpc_cursor_be32(c) : fpc_cursor_le32(c);

    if (c->err) {
        return FPC_STATUS_MALFORMED;
    }
    /* A NULL header written by a big-endian host reads as family << 24. */
    if (!big_endian && (family & 0xffff0000u)) {
        family = ((family >> 24) & 0xff) | ((family >> 8) & 0xff00);
    }
    switch (family) {
    case 2:
        return fpc_ip_decode(d, c, 4, 0);
    case 24:
    case 28:
    case 30:
        return fpc_ip_decode(d, c, 6, 0);
    default:
        return FPC_STATUS_NON_IP;
    }
}

/*
 * Frame Relay (LINKTYPE_FRELAY): a Q.922 address of 2 to 4 bytes, the last
 * one with its low (EA) bit set, then either
 *
 *   RFC 2427:        | control 0x03 | [pad 0x00] | NLPID (1) | ...
 *                    NLPID 0xcc IPv4, 0x8e IPv6, 0x80 SNAP (OUI (3) | ethertype (2))
 *   Cisco encapsulation: | ethertype (2) | ...
 */
static int
decode_frelay(FpcDecoder *d, FpcCursor *c)
{
    uint8_t b = 0;
    int i;

    for (i = 0; i < 4; i++) {
        b = fpc_cursor_u8(c);
        if (c->err || (i > 0 && (b & 1))) {
            break;
        }
    }
    if (c->err || !(b & 1) || !fpc_cursor_peek(c, 0, &b)) {
        return FPC_STATUS_MALFORMED;
    }
    if (b != 0x03) {
        return fpc_link_ethertype(d, c, fpc_cursor_be16(c), 0);
    }
    fpc_cursor_skip(c, 1);
    b = fpc_cursor_u8(c);
    if (b == 0x00) {
        b = fpc_cursor_u8(c);
    }
    if (c->err) {
        return FPC_STATUS_MALFORMED;
    }
    if (b == 0xcc) {
        return fpc_ip_decode(d, c, 4, 0);
    }
    if (b == 0x8e) {
        return fpc_ip_decode(d, c, 6, 0);
    }
    if (b == 0x80) {
        fpc_cursor_skip(c, 3);
        return c->err ? FPC_STATUS_MALFORMED : fpc_link_ethertype(d, c, fpc_cursor_be16(c), 0);
    }
    return FPC_STATUS_NON_IP;
}

/*
 * NFLOG (LINKTYPE_NFLOG): a 4-byte header, then TLVs in host byte order,
 * each padded to 4 bytes; TLV type 9 holds the packet:
 *
 *   | family (1) | version (1) | resource id (2) |
 *   | length (2) | type (2) | value (length - 4) | pad |  ...
 */
static int
decode_nflog(FpcDecoder *d, FpcCursor *c)
{
    uint8_t family = fpc_cursor_u8(c);
    uint16_t length, type;

    /* TODO: TLVs are read as little-endian because NFLOG captures come from
     * the host's byte order and big-endian Linux capture hosts are rare; a
     * big-endian capture decodes as malformed. */
    fpc_cursor_skip(c, 3);
    while (!c->err) {
        length = fpc_cursor_le16(c);
        type = fpc_cursor_le16(c) & 0x7fff;
        if (c->err || length < 4) {
            return FPC_STATUS_MALFORMED;
        }
        if (type == 9) {
            fpc_cursor_limit(c, (size_t)length - 4);
            return fpc_ip_decode(d, c, family == 10 ? 6 : (family == 2 ? 4 : 0), 0);
        }
        fpc_cursor_skip(c, (((size_t)length + 3) & ~(size_t)3) - 4);
    }
    return FPC_STATUS_MALFORMED;
}

/*
 * 802.11 data frame (LINKTYPE_IEEE802_11):
 *
 *   | frame control (2) | duration (2) | addr1 (6) | addr2 (6) | addr3 (6) |
 *   | sequence control (2) | [addr4 (6): ToDS and FromDS] | [QoS control (2)] |
 *   | [HT control (4): QoS and Order] | LLC/SNAP ...
 *
 * Frame control byte 0 holds version (2 bits), type (2), subtype (4); byte 1
 * the flags ToDS 0x01, FromDS 0x02, Protected 0x40, Order 0x80.
 */
static int
decode_80211(FpcDecoder *d, FpcCursor *c)
{
    uint8_t fc0 = fpc_cursor_u8(c);
    uint8_t fc1 = fpc_cursor_u8(c);
    int qos = (fc0 & 0x80) != 0;

    if (c->err) {
        return FPC_STATUS_MALFORMED;
    }
    /* Management and control frames, null data and encrypted data carry no IP we can read. */
    if (((fc0 >> 2) & 3) != 2 || (fc0 & 0x40) || (fc1 & 0x40)) {
        return FPC_STATUS_NON_IP;
    }
    fpc_cursor_skip(c, 22);
    if ((fc1 & 3) == 3) {
        fpc_cursor_skip(c, 6);
    }
    if (qos) {
        fpc_cursor_skip(c, (fc1 & 0x80) ? 6 : 2);
    }
    if (c->err) {
        return FPC_STATUS_MALFORMED;
    }
    return decode_llc(d, c, 0);
}

/*
 * Radiotap (LINKTYPE_IEEE802_11_RADIOTAP), little-endian, then an 802.11 frame:
 *
 *   | version (1) = 0 | pad (1) | header length (2) | present flags (4) | fields ... |
 */
static int
decode_radiotap(FpcDecoder *d, FpcCursor *c)
{
    uint8_t version = fpc_cursor_u8(c);
    uint16_t length;

    fpc_cursor_skip(c, 1);
    length = fpc_cursor_le16(c);
    if (c->err || version != 0 || length < 8) {
        return FPC_STATUS_MALFORMED;
    }
    fpc_cursor_skip(c, (size_t)length - 4);
    if (c->err) {
        return FPC_STATUS_MALFORMED;
    }
    return decode_80211(d, c);
}

int
fpc_link_decode(FpcDecoder *d, FpcCursor *c, unsigned linktype)
{
    switch (linktype) {
    case 1:
        return fpc_link_ether(d, c, 0);
    case 113:
        return decode_sll(d, c);
    case 276:
        return decode_sll2(d, c);
    case 12:
    case 14:
    case 101:
        return fpc_ip_decode(d, c, 0, 0);
    case 228:
        return fpc_ip_decode(d, c, 4, 0);
    case 229:
        return fpc_ip_decode(d, c, 6, 0);
    case 0:
        return decode_null(d, c, 0);
    case 108:
        return decode_null(d, c, 1);
    case 107:
        return decode_frelay(d, c);
    case 239:
        return decode_nflog(d, c);
    case 127:
        return decode_radiotap(d, c);
    case 105:
        return decode_80211(d, c);
    default:
        return FPC_STATUS_UNSUPPORTED_LINK;
    }
}
