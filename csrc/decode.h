/*
 * Shared declarations of the packet decoders (link.c, ip.c, tunnel.c, key.c).
 *
 * The decoders fill one FpcDecoded per packet, a native C mirror of the numpy
 * dtype fpc.decode.DECODED; fastpath.c copies it field by field into the
 * caller's numpy row at the offsets the dtype reports. The decoders run without
 * the GIL and touch no Python object; they keep no state between packets.
 */
#ifndef FPC_DECODE_H
#define FPC_DECODE_H

#include <stdint.h>

#include "cursor.h"

/* Values of `status`; must match STATUS_* in fpc/decode.py. */
#define FPC_STATUS_IP 0
#define FPC_STATUS_NON_IP 1
#define FPC_STATUS_MALFORMED 2
#define FPC_STATUS_UNSUPPORTED_LINK 3
#define FPC_STATUS_LINK 4 /* a non-IP Ethernet frame, keyed by its MACs and ethertype */

/* Bits of `tunnel`; must match TUNNEL_* in fpc/decode.py. */
#define FPC_TUNNEL_VLAN (1u << 0)
#define FPC_TUNNEL_MPLS (1u << 1)
#define FPC_TUNNEL_PPPOE (1u << 2)
#define FPC_TUNNEL_GRE (1u << 3)
#define FPC_TUNNEL_ERSPAN (1u << 4)
#define FPC_TUNNEL_VXLAN (1u << 5)
#define FPC_TUNNEL_GENEVE (1u << 6)
#define FPC_TUNNEL_GTP (1u << 7)
#define FPC_TUNNEL_IPIP (1u << 8)
#define FPC_TUNNEL_PPP (1u << 9)

/* Bits of `frag`; must match FRAG_* in fpc/decode.py. */
#define FPC_FRAG_MORE 1
#define FPC_FRAG_NONFIRST 2

/* Encapsulations (Ethernet frames and IP headers) one packet may nest. */
#define FPC_MAX_DEPTH 8

#define FPC_KEY_LEN 44

typedef struct {
    uint8_t status;
    uint8_t ip_version;
    uint8_t proto;
    uint8_t tcp_flags;
    uint8_t frag;
    uint8_t ttl;
    uint8_t reverse;
    uint8_t vlan_count;
    uint16_t vlan[2];
    uint16_t ethertype;
    uint16_t sport;
    uint16_t dport;
    uint8_t icmp_type;
    uint8_t icmp_code;
    uint16_t tunnel;
    uint16_t l3_offset;
    uint16_t payload_offset;
    uint32_t payload_len;
    uint32_t ip_id;
    uint16_t frag_offset;
    uint32_t seq;
    uint32_t ack;
    uint8_t src[16];
    uint8_t dst[16];
    uint8_t src_mac[6]; /* innermost Ethernet header */
    uint8_t dst_mac[6];
    uint8_t key[FPC_KEY_LEN];
    uint32_t hash;
} FpcDecoded;

typedef struct {
    FpcDecoded row;
} FpcDecoder;

/* link.c: decodes from the link-layer header of `linktype`; returns a status. */
int fpc_link_decode(FpcDecoder *d, FpcCursor *c, unsigned linktype);
/* link.c: decodes an Ethernet frame starting at the destination MAC. */
int fpc_link_ether(FpcDecoder *d, FpcCursor *c, int depth);
/* link.c: decodes what follows an ethertype (VLAN tags, MPLS, PPPoE, IP). */
int fpc_link_ethertype(FpcDecoder *d, FpcCursor *c, uint16_t type, int depth);
/* link.c: records a VLAN id (802.1Q tag, or the original VLAN an ERSPAN header names). */
void fpc_link_vlan(FpcDecoder *d, uint16_t id);
/* link.c: decodes a PPP protocol field and what follows it (GRE/PPTP, PPPoE). */
int fpc_link_ppp(FpcDecoder *d, FpcCursor *c, int depth);

/* ip.c: decodes an IP header; version 0 picks it from the first nibble. */
int fpc_ip_decode(FpcDecoder *d, FpcCursor *c, int version, int depth);

/* tunnel.c: decodes the inner packet of a GRE header at c. */
int fpc_tunnel_gre(FpcDecoder *d, FpcCursor *c, int depth);
/* tunnel.c: decodes the inner packet of a UDP tunnel (VXLAN, Geneve, GTP-U) at c. */
int fpc_tunnel_udp(FpcDecoder *d, FpcCursor *c, uint16_t sport, uint16_t dport, int depth);
/* tunnel.c: whether UDP ports name a tunnel fpc_tunnel_udp decodes. */
int fpc_tunnel_is_udp(uint16_t sport, uint16_t dport);

/* transaction.c: the last key byte of a DHCP or DHCPv6 exchange keyed by transaction. */
#define FPC_KEY_TRANSACTION 1

/* key.c: fills key, reverse and hash from the addresses and ports, and the
 * VLAN ids when `key_vlan` is set; `pkt` holds the packet the row describes
 * (a DHCP exchange is keyed by its transaction, see transaction.c). */
void fpc_key_build(FpcDecoded *row, const uint8_t *pkt, int key_vlan);
/* key.c: the same from the MACs and the ethertype of a non-IP Ethernet frame. */
void fpc_key_build_link(FpcDecoded *row, int key_vlan);
/* transaction.c: keys a DHCP or DHCPv6 message by its transaction; 0 when
 * the row is not one (the key is then left alone). */
int fpc_key_transaction(FpcDecoded *row, const uint8_t *pkt, int key_vlan);

#endif /* FPC_DECODE_H */
