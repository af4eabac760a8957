/*
 * Tunnel decoders: GRE (with PPTP, ERSPAN I/II/III), VXLAN, VXLAN-GPE,
 * Geneve, GTP-U.
 *
 * Called by ip.c with a cursor at the tunnel header and depth already raised
 * by one; each returns the status of the inner packet, which ip.c discards in
 * favour of the outer header unless it is FPC_STATUS_IP. Runs without the GIL
 * on bytes borrowed from the caller; all reads go through FpcCursor.
 */
#include "decode.h"

#define GRE_C 0x8000
#define GRE_R 0x4000
#define GRE_K 0x2000
#define GRE_S 0x1000
#define GRE_A 0x0080 /* acknowledgment present, version 1 only */

#define GRE_IPV4 0x0800
#define GRE_IPV6 0x86dd
#define GRE_TEB 0x6558 /* transparent Ethernet bridging */
#define GRE_PPP 0x880b
#define GRE_ERSPAN_2 0x88be
#define GRE_ERSPAN_3 0x22eb

#define ERSPAN_EN_TAG_KEPT 3 /* En: the original VLAN tag is kept in the frame */

#define PORT_GTP_U 2152
#define PORT_VXLAN 4789
#define PORT_VXLAN_GPE 4790
#define PORT_GENEVE 6081

/*
 * ERSPAN type III header (12 bytes), then an optional 8-byte platform
 * subheader when O is set, then Ethernet:
 *
 *   | ver (4) | VLAN (12) | COS (3) | BSO (2) | T (1) | session id (10) |
 *   | timestamp (32) |
 *   | SGT (16) | P (1) | FT (5) | HW id (6) | D (1) | Gra (2) | O (1) |
 */
static int
decode_erspan3(FpcDecoder *d, FpcCursor *c, int depth)
{
    uint32_t word3;
    uint16_t vlan;

    vlan = fpc_cursor_be16(c) & 0x0fff;
    fpc_cursor_skip(c, 6);
    word3 = fpc_cursor_be32(c);
    if (word3 & 1) {
        fpc_cursor_skip(c, 8);
    }
    if (c->err) {
        return FPC_STATUS_MALFORMED;
    }
    d->row.tunnel |= FPC_TUNNEL_ERSPAN;
    if (vlan != 0) {
        fpc_link_vlan(d, vlan);
    }
    return fpc_link_ether(d, c, depth);
}

/*
 * ERSPAN type II header (8 bytes) then Ethernet; type I has no header and is
 * told apart by the GRE sequence bit being clear.
 *
 *   | ver (4) | VLAN (12) | COS (3) | En (2) | T (1) | session id (10) |
 *   | reserved (12) | index (20) |
 */
static int
decode_erspan2(FpcDecoder *d, FpcCursor *c, int has_seq, int depth)
{
    uint16_t vlan = 0, word2;

    if (has_seq) {
        vlan = fpc_cursor_be16(c) & 0x0fff;
        word2 = fpc_cursor_be16(c);
        fpc_cursor_skip(c, 4);
        if ((word2 >> 11 & 3) == ERSPAN_EN_TAG_KEPT) {
            vlan = 0; /* the mirrored frame carries its tag itself */
        }
    }
    if (c->err) {
        return FPC_STATUS_MALFORMED;
    }
    d->row.tunnel |= FPC_TUNNEL_ERSPAN;
    if (vlan != 0) {
        fpc_link_vlan(d, vlan);
    }
    return fpc_link_ether(d, c, depth);
}

static int
decode_gre_payload(FpcDecoder *d, FpcCursor *c, uint16_t flags, uint16_t proto, int depth)
{
    int status;

    switch (proto) {
    case GRE_IPV4:
        return fpc_ip_decode(d, c, 4, depth);
    case GRE_IPV6:
        return fpc_ip_decode(d, c, 6, depth);
    case GRE_TEB:
        return fpc_link_ether(d, c, depth);
    case GRE_ERSPAN_2:
        return decode_erspan2(d, c, (flags & GRE_S) != 0, depth);
    case GRE_ERSPAN_3:
        return decode_erspan3(d, c, depth);
    case GRE_PPP:
        status = fpc_link_ppp(d, c, depth);
        d->row.tunnel |= FPC_TUNNEL_PPP;
        return status;
    default:
        return FPC_STATUS_NON_IP;
    }
}

/*
 * GRE (RFC 2784/2890) and enhanced GRE of PPTP (RFC 2637, version 1):
 *
 *   | C | R | K | S | s | recur (3) | A | flags (4) | ver (3) | protocol type (16) |
 *   | checksum (16) | offset (16) |        present if C or R
 *   | key (32) |                           present if K (v1: payload length, call id)
 *   | sequence number (32) |               present if S
 *   | acknowledgment number (32) |         present if A (v1 only)
 *
 * Source routing (R) is obsolete and not decoded.
 */
int
fpc_tunnel_gre(FpcDecoder *d, FpcCursor *c, int depth)
{
    uint16_t flags = fpc_cursor_be16(c);
    uint16_t proto = fpc_cursor_be16(c);
    unsigned version = flags & 7;

    if (c->err || (flags & GRE_R) || version > 1 || (version == 1 && proto != GRE_PPP)) {
        return FPC_STATUS_MALFORMED;
    }
    if (flags & GRE_C) {
        fpc_cursor_skip(c, 4);
    }
    if (flags & GRE_K) {
        fpc_cursor_skip(c, 4);
    }
    if (flags & GRE_S) {
        fpc_cursor_skip(c, 4);
    }
    if (version == 1 && (flags & GRE_A)) {
        fpc_cursor_skip(c, 4);
    }
    if (c->err) {
        return FPC_STATUS_MALFORMED;
    }
    d->row.tunnel |= FPC_TUNNEL_GRE;
    return decode_gre_payload(d, c, flags, proto, depth);
}

/*
 * VXLAN (RFC 7348), then Ethernet:
 *
 *   | flags (8, I = 0x08) | reserved (24) | VNI (24) | reserved (8) |
 */
static int
decode_vxlan(FpcDecoder *d, FpcCursor *c, int depth)
{
    uint8_t flags = fpc_cursor_u8(c);

    fpc_cursor_skip(c, 7);
    if (c->err || !(flags & 0x08)) {
        return FPC_STATUS_MALFORMED;
    }
    d->row.tunnel |= FPC_TUNNEL_VXLAN;
    return fpc_link_ether(d, c, depth);
}

/*
 * VXLAN-GPE (UDP 4790), then what the next-protocol byte names
 * (1 IPv4, 2 IPv6, 3 Ethernet):
 *
 *   | flags (8, I = 0x08, P = 0x04) | reserved (16) | next protocol (8) |
 *   | VNI (24) | reserved (8) |
 */
static int
decode_vxlan_gpe(FpcDecoder *d, FpcCursor *c, int depth)
{
    uint8_t flags = fpc_cursor_u8(c);
    uint8_t next;

    fpc_cursor_skip(c, 2);
    next = fpc_cursor_u8(c);
    fpc_cursor_skip(c, 4);
    if (c->err || !(flags & 0x08)) {
        return FPC_STATUS_MALFORMED;
    }
    d->row.tunnel |= FPC_TUNNEL_VXLAN;
    if (!(flags & 0x04) || next == 3) {
        return fpc_link_ether(d, c, depth);
    }
    if (next == 1 || next == 2) {
        return fpc_ip_decode(d, c, next == 1 ? 4 : 6, depth);
    }
    return FPC_STATUS_NON_IP;
}

/*
 * Geneve (RFC 8926), then Ethernet (0x6558) or IP:
 *
 *   | ver (2) | options length (6, 4-byte units) | O (1) | C (1) | reserved (6) |
 *   | protocol type (16) | VNI (24) | reserved (8) | options ... |
 */
static int
decode_geneve(FpcDecoder *d, FpcCursor *c, int depth)
{
    uint8_t first = fpc_cursor_u8(c);
    uint16_t proto;

    fpc_cursor_skip(c, 1);
    proto = fpc_cursor_be16(c);
    fpc_cursor_skip(c, 4 + (size_t)(first & 0x3f) * 4);
    if (c->err || (first >> 6) != 0) {
        return FPC_STATUS_MALFORMED;
    }
    d->row.tunnel |= FPC_TUNNEL_GENEVE;
    if (proto == GRE_TEB) {
        return fpc_link_ether(d, c, depth);
    }
    if (proto == GRE_IPV4 || proto == GRE_IPV6) {
        return fpc_ip_decode(d, c, proto == GRE_IPV4 ? 4 : 6, depth);
    }
    return FPC_STATUS_NON_IP;
}

/*
 * GTP-U version 1 (3GPP TS 29.281), then IPv4 or IPv6 by version nibble:
 *
 *   | ver (3) | PT (1) | res (1) | E (1) | S (1) | PN (1) | message type (8) |
 *   | length (16) | TEID (32) |
 *   | sequence (16) | N-PDU (8) | next extension type (8) |   present if E, S or PN
 *   extension: | length (8, 4-byte units) | content | next extension type (8) |
 *
 * Only message type 0xff (G-PDU) carries a user packet.
 */
static int
decode_gtp(FpcDecoder *d, FpcCursor *c, int depth)
{
    uint8_t flags = fpc_cursor_u8(c);
    uint8_t type = fpc_cursor_u8(c);
    uint8_t next = 0;
    uint8_t len;

    fpc_cursor_skip(c, 6);
    if (c->err || (flags >> 4) != 0x3 || type != 0xff) {
        return FPC_STATUS_MALFORMED;
    }
    if (flags & 0x07) {
        fpc_cursor_skip(c, 3);
        next = fpc_cursor_u8(c);
    }
    /* Each extension costs at least 4 bytes, so the loop ends with the packet. */
    while (next != 0 && !c->err) {
        len = fpc_cursor_u8(c);
        if (len == 0) {
            return FPC_STATUS_MALFORMED;
        }
        fpc_cursor_skip(c, (size_t)len * 4 - 2);
        next = fpc_cursor_u8(c);
    }
    if (c->err) {
        return FPC_STATUS_MALFORMED;
    }
    d->row.tunnel |= FPC_TUNNEL_GTP;
    return fpc_ip_decode(d, c, 0, depth);
}

int
fpc_tunnel_is_udp(uint16_t sport, uint16_t dport)
{
    return dport == PORT_VXLAN || dport == PORT_VXLAN_GPE || dport == PORT_GENEVE ||
           dport == PORT_GTP_U || sport == PORT_GTP_U;
}

int
fpc_tunnel_udp(FpcDecoder *d, FpcCursor *c, uint16_t sport, uint16_t dport, int depth)
{
    if (dport == PORT_VXLAN) {
        return decode_vxlan(d, c, depth);
    }
    if (dport == PORT_VXLAN_GPE) {
        return decode_vxlan_gpe(d, c, depth);
    }
    if (dport == PORT_GENEVE) {
        return decode_geneve(d, c, depth);
    }
    if (dport == PORT_GTP_U || sport == PORT_GTP_U) {
        return decode_gtp(d, c, depth);
    }
    return FPC_STATUS_NON_IP;
}
