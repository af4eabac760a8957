/*
 * IP and transport decoders: IPv4 (with options), IPv6 (with extension
 * headers), then TCP, UDP, SCTP, ICMP/ICMPv6, and the tunnels found above IP.
 *
 * Runs without the GIL on bytes borrowed from the caller (see fastpath.c); all
 * reads go through FpcCursor. Every IP header resets the L3/L4 fields of the
 * row, so the innermost one wins. A tunnel's inner packet is decoded on a copy
 * of the outer row; if the inner packet is not a valid IP packet, the outer
 * row is put back and the packet is sessioned on the outer header.
 *
 * Lengths: the cursor is narrowed to the IP total/payload length, so Ethernet
 * padding is never payload. A header running past the captured bytes but not
 * past the IP length was cut by the snap length (status IP, the fields read so
 * far kept); one running past the IP length is malformed.
 */
#include <string.h>

#include "decode.h"

#define PROTO_HOPOPTS 0
#define PROTO_ICMP 1
#define PROTO_IPIP 4
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_IPV6 41
#define PROTO_ROUTING 43
#define PROTO_FRAGMENT 44
#define PROTO_GRE 47
#define PROTO_ESP 50
#define ESP_HEADER_LEN 8 /* SPI (4) and sequence number (4) */
#define PROTO_AH 51
#define PROTO_ICMPV6 58
#define PROTO_DSTOPTS 60
#define PROTO_SCTP 132
#define PROTO_MOBILITY 135
#define PROTO_HIP 139
#define PROTO_SHIM6 140

/* Each extension header costs at least 8 bytes, so a 64 KiB packet ends the
 * chain first; the cap only makes the bound explicit. */
#define MAX_EXT_HEADERS 8192

static uint16_t
clip16(size_t v)
{
    return v > UINT16_MAX ? UINT16_MAX : (uint16_t)v;
}

/*
 * Status for a header of `need` bytes at c->pos that the cursor cannot hold:
 * malformed if the IP length cannot hold it either, else cut by the snap
 * length, and the cursor moves to the end so nothing after it is read.
 */
static int
cut_status(FpcCursor *c, size_t need, size_t ip_end)
{
    if (c->pos + need > ip_end) {
        return FPC_STATUS_MALFORMED;
    }
    c->pos = c->end;
    return FPC_STATUS_IP;
}

static void
reset_l3(FpcDecoded *row)
{
    row->ip_version = row->proto = row->tcp_flags = row->frag = row->ttl = 0;
    row->sport = row->dport = 0;
    row->icmp_type = row->icmp_code = 0;
    row->payload_offset = 0;
    row->payload_len = 0;
    row->ip_id = 0;
    row->frag_offset = 0;
    row->seq = row->ack = 0;
    memset(row->src, 0, sizeof(row->src));
    memset(row->dst, 0, sizeof(row->dst));
}

/*
 * IPv4 (RFC 791):
 *
 *   | version (4) | IHL (4) | TOS (8) | total length (16) |
 *   | identification (16) | flags (3: 0, DF, MF) | fragment offset (13, 8-byte units) |
 *   | TTL (8) | protocol (8) | header checksum (16) |
 *   | source address (32) | destination address (32) | options (IHL * 4 - 20) |
 */
static int
decode_ipv4(FpcDecoder *d, FpcCursor *c, size_t *ip_end)
{
    size_t start = c->pos;
    uint8_t vihl = fpc_cursor_u8(c);
    uint16_t total, frag;
    size_t hlen = (size_t)(vihl & 0x0f) * 4;
    const uint8_t *addrs;

    fpc_cursor_skip(c, 1);
    total = fpc_cursor_be16(c);
    d->row.ip_id = fpc_cursor_be16(c);
    frag = fpc_cursor_be16(c);
    d->row.ttl = fpc_cursor_u8(c);
    d->row.proto = fpc_cursor_u8(c);
    fpc_cursor_skip(c, 2);
    addrs = fpc_cursor_take(c, 8);
    /* Total length 0 comes from TCP segmentation offload on the capturing
     * host: the packet then ends with the captured bytes. */
    if (c->err || hlen < 20 || (total != 0 && total < hlen)) {
        return FPC_STATUS_MALFORMED;
    }
    fpc_cursor_skip(c, hlen - 20);
    if (c->err) {
        return FPC_STATUS_MALFORMED;
    }
    memcpy(d->row.src, addrs, 4);
    memcpy(d->row.dst, addrs + 4, 4);
    d->row.ip_version = 4;
    d->row.frag_offset = (uint16_t)((frag & 0x1fff) * 8);
    d->row.frag = (frag & 0x2000 ? FPC_FRAG_MORE : 0) | (frag & 0x1fff ? FPC_FRAG_NONFIRST : 0);
    if (total != 0) {
        fpc_cursor_limit(c, total - hlen);
        *ip_end = start + total;
    }
    return FPC_STATUS_IP;
}

/*
 * IPv6 fragment header (RFC 8200):
 *
 *   | next header (8) | reserved (8) | offset (13, 8-byte units) | res (2) | M (1) |
 *   | identification (32) |
 */
static void
read_ipv6_fragment(FpcDecoder *d, FpcCursor *c)
{
    uint16_t off;

    fpc_cursor_skip(c, 2);
    off = fpc_cursor_be16(c);
    d->row.ip_id = fpc_cursor_be32(c);
    d->row.frag_offset = (uint16_t)(off & 0xfff8);
    d->row.frag = (off & 1 ? FPC_FRAG_MORE : 0) | (off & 0xfff8 ? FPC_FRAG_NONFIRST : 0);
}

/*
 * IPv6 extension headers, each starting | next header (8) | length (8) |:
 * hop-by-hop (0), routing (43), destination options (60), mobility (135),
 * HIP (139), shim6 (140): (length + 1) * 8 bytes; fragment (44): 8 bytes;
 * AH (51): (length + 2) * 4 bytes. Stops at anything else (ESP 50 and
 * no-next-header 59 included) and after a non-first fragment header.
 * Returns a status and leaves row.proto at the last next-header value.
 */
static int
skip_ext_headers(FpcDecoder *d, FpcCursor *c, size_t ip_end)
{
    uint8_t next = 0, len = 0;
    size_t size;
    int n;

    for (n = 0; n < MAX_EXT_HEADERS; n++) {
        switch (d->row.proto) {
        case PROTO_HOPOPTS:
        case PROTO_ROUTING:
        case PROTO_DSTOPTS:
        case PROTO_MOBILITY:
        case PROTO_HIP:
        case PROTO_SHIM6:
        case PROTO_AH:
        case PROTO_FRAGMENT:
            break;
        default:
            return FPC_STATUS_IP;
        }
        if (!fpc_cursor_has(c, 8)) {
            return cut_status(c, 8, ip_end);
        }
        (void)fpc_cursor_peek(c, 0, &next);
        (void)fpc_cursor_peek(c, 1, &len);
        size = d->row.proto == PROTO_AH ? ((size_t)len + 2) * 4 : ((size_t)len + 1) * 8;
        if (d->row.proto == PROTO_FRAGMENT) {
            read_ipv6_fragment(d, c);
        } else if (!fpc_cursor_has(c, size)) {
            return cut_status(c, size, ip_end);
        } else {
            fpc_cursor_skip(c, size);
        }
        d->row.proto = next;
        if (d->row.frag & FPC_FRAG_NONFIRST) {
            return FPC_STATUS_IP;
        }
    }
    return FPC_STATUS_MALFORMED;
}

/*
 * IPv6 fixed header (RFC 8200):
 *
 *   | version (4) | traffic class (8) | flow label (20) |
 *   | payload length (16) | next header (8) | hop limit (8) |
 *   | source address (128) | destination address (128) |
 */
static int
decode_ipv6(FpcDecoder *d, FpcCursor *c, size_t *ip_end)
{
    size_t start = c->pos;
    uint16_t plen;
    const uint8_t *addrs;

    fpc_cursor_skip(c, 4);
    plen = fpc_cursor_be16(c);
    d->row.proto = fpc_cursor_u8(c);
    d->row.ttl = fpc_cursor_u8(c);
    addrs = fpc_cursor_take(c, 32);
    if (c->err) {
        return FPC_STATUS_MALFORMED;
    }
    memcpy(d->row.src, addrs, 16);
    memcpy(d->row.dst, addrs + 16, 16);
    d->row.ip_version = 6;
    /* Payload length 0 is a jumbogram or an offloaded segment: ends with the capture. */
    if (plen != 0) {
        fpc_cursor_limit(c, plen);
        *ip_end = start + 40 + plen;
    }
    return skip_ext_headers(d, c, *ip_end);
}

/*
 * TCP (RFC 9293):
 *
 *   | source port (16) | destination port (16) | sequence number (32) |
 *   | acknowledgment number (32) | data offset (4) | reserved (4) | flags (8) |
 *   | window (16) | checksum (16) | urgent pointer (16) | options |
 */
static int
decode_tcp(FpcDecoder *d, FpcCursor *c, size_t ip_end)
{
    size_t start = c->pos;
    size_t hlen;

    if (!fpc_cursor_has(c, 4)) {
        return cut_status(c, 4, ip_end);
    }
    d->row.sport = fpc_cursor_be16(c);
    d->row.dport = fpc_cursor_be16(c);
    if (!fpc_cursor_has(c, 16)) {
        return cut_status(c, 16, ip_end);
    }
    d->row.seq = fpc_cursor_be32(c);
    d->row.ack = fpc_cursor_be32(c);
    hlen = (size_t)(fpc_cursor_u8(c) >> 4) * 4;
    d->row.tcp_flags = fpc_cursor_u8(c);
    fpc_cursor_skip(c, 6);
    if (hlen < 20 || start + hlen > ip_end) {
        return FPC_STATUS_MALFORMED;
    }
    fpc_cursor_skip(c, hlen - 20);
    return FPC_STATUS_IP;
}

/*
 * UDP:  | source port (16) | destination port (16) | length (16) | checksum (16) |
 * SCTP: | source port (16) | destination port (16) | verification tag (32) | checksum (32) |
 */
static int
decode_ports(FpcDecoder *d, FpcCursor *c, size_t hlen, size_t ip_end)
{
    if (!fpc_cursor_has(c, 4)) {
        return cut_status(c, 4, ip_end);
    }
    d->row.sport = fpc_cursor_be16(c);
    d->row.dport = fpc_cursor_be16(c);
    if (!fpc_cursor_has(c, hlen - 4)) {
        return cut_status(c, hlen - 4, ip_end);
    }
    fpc_cursor_skip(c, hlen - 4);
    return FPC_STATUS_IP;
}

/* ICMP / ICMPv6: | type (8) | code (8) | checksum (16) | rest of header (32) |. */
static int
decode_icmp(FpcDecoder *d, FpcCursor *c, size_t ip_end)
{
    if (!fpc_cursor_has(c, 2)) {
        return cut_status(c, 2, ip_end);
    }
    d->row.icmp_type = fpc_cursor_u8(c);
    d->row.icmp_code = fpc_cursor_u8(c);
    fpc_cursor_skip(c, fpc_cursor_left(c) < 6 ? fpc_cursor_left(c) : 6);
    return FPC_STATUS_IP;
}

/* Decodes the inner packet of a tunnel; on failure puts the outer row back. */
static int
decode_inner(FpcDecoder *d, FpcCursor inner, int depth)
{
    FpcDecoded outer = d->row;
    int status;

    switch (outer.proto) {
    case PROTO_IPIP:
        status = fpc_ip_decode(d, &inner, 4, depth + 1);
        d->row.tunnel |= FPC_TUNNEL_IPIP;
        break;
    case PROTO_IPV6:
        status = fpc_ip_decode(d, &inner, 6, depth + 1);
        d->row.tunnel |= FPC_TUNNEL_IPIP;
        break;
    case PROTO_GRE:
        status = fpc_tunnel_gre(d, &inner, depth + 1);
        break;
    default:
        status = fpc_tunnel_udp(d, &inner, outer.sport, outer.dport, depth + 1);
        break;
    }
    if (status != FPC_STATUS_IP) {
        /* The session is the outer packet's, but an inner frame's MACs and
         * VLANs still name the hosts mirrored or bridged (ERSPAN of CDP). */
        FpcDecoded inner_row = d->row;

        d->row = outer;
        memcpy(d->row.src_mac, inner_row.src_mac, 6);
        memcpy(d->row.dst_mac, inner_row.dst_mac, 6);
        d->row.vlan_count = inner_row.vlan_count;
        memcpy(d->row.vlan, inner_row.vlan, sizeof(d->row.vlan));
    }
    return FPC_STATUS_IP;
}

static int
decode_l4(FpcDecoder *d, FpcCursor *c, size_t ip_end)
{
    switch (d->row.proto) {
    case PROTO_TCP:
        return decode_tcp(d, c, ip_end);
    case PROTO_UDP:
        return decode_ports(d, c, 8, ip_end);
    case PROTO_SCTP:
        return decode_ports(d, c, 12, ip_end);
    case PROTO_ICMP:
    case PROTO_ICMPV6:
        return decode_icmp(d, c, ip_end);
    case PROTO_ESP:
        /* The encrypted payload follows the SPI and sequence number. */
        if (fpc_cursor_left(c) >= ESP_HEADER_LEN) {
            fpc_cursor_skip(c, ESP_HEADER_LEN);
        }
        return FPC_STATUS_IP;
    default:
        return FPC_STATUS_IP;
    }
}

static int
is_tunnel(const FpcDecoded *row)
{
    switch (row->proto) {
    case PROTO_IPIP:
    case PROTO_IPV6:
    case PROTO_GRE:
        return 1;
    case PROTO_UDP:
        return fpc_tunnel_is_udp(row->sport, row->dport);
    default:
        return 0;
    }
}

int
fpc_ip_decode(FpcDecoder *d, FpcCursor *c, int version, int depth)
{
    size_t ip_end = c->end;
    size_t l4;
    uint8_t first;
    int status;

    if (depth > FPC_MAX_DEPTH || !fpc_cursor_peek(c, 0, &first)) {
        return FPC_STATUS_MALFORMED;
    }
    if (version == 0) {
        version = first >> 4;
    }
    if (version != first >> 4 || (version != 4 && version != 6)) {
        return FPC_STATUS_MALFORMED;
    }
    reset_l3(&d->row);
    d->row.l3_offset = clip16(c->pos);
    status = version == 4 ? decode_ipv4(d, c, &ip_end) : decode_ipv6(d, c, &ip_end);
    if (status != FPC_STATUS_IP) {
        return status;
    }
    if (version == 4 && d->row.proto == PROTO_AH && !(d->row.frag & FPC_FRAG_NONFIRST)) {
        status = skip_ext_headers(d, c, ip_end);
    }

    l4 = c->pos;
    if (status == FPC_STATUS_IP && !(d->row.frag & FPC_FRAG_NONFIRST)) {
        status = decode_l4(d, c, ip_end);
    }
    if (status != FPC_STATUS_IP) {
        return status;
    }
    if (c->err) {
        c->pos = c->end;
        c->err = 0;
    }
    d->row.payload_offset = clip16(c->pos);
    d->row.payload_len = (uint32_t)fpc_cursor_left(c);
    if (!(d->row.frag & FPC_FRAG_NONFIRST) && is_tunnel(&d->row)) {
        FpcCursor inner = *c;
        if (d->row.proto != PROTO_UDP) {
            inner.pos = l4;
        }
        return decode_inner(d, inner, depth);
    }
    return FPC_STATUS_IP;
}
