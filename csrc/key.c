/*
 * Session key and hash of a decoded IP packet.
 *
 * Key layout (44 bytes, numbers big-endian; mirrors KEY_LAYOUT in
 * fpc/decode.py):
 *
 *   | lower address (16) | higher address (16) | lower port (2) | higher port (2) |
 *   | IP protocol (1) | IP version (1) | outer VLAN (2) | inner VLAN (2) | zero (2) |
 *
 * A non-IP Ethernet frame (fpc_key_build_link) is keyed the same way with its
 * MACs as addresses (6 bytes, zero padded), no ports, IP version 0 and its
 * ethertype (an 802.3 LLC frame without SNAP: its DSAP) in the last two bytes.
 * A frame to a multicast group (LLDP, STP, IS-IS hellos) leaves its source
 * out: every sender's announcements to the group are one session.
 *
 * DHCP and DHCPv6 exchanges are keyed by transaction instead (transaction.c).
 *
 * The VLAN ids are zero unless the caller keys sessions by VLAN too (for
 * networks whose VLANs reuse addresses); by default the same conversation
 * mirrored from two VLANs is one session.
 *
 * "Lower" compares (address bytes, port) as a tuple, so both directions of a
 * session give the same key; `reverse` is 1 when the packet was sent by the
 * higher endpoint. The hash is 32-bit MurmurHash3 (x86_32, seed 0) over the
 * key, hence the same in both directions. Pure computation: no GIL, no
 * Python objects.
 */
#include <string.h>

#include "decode.h"

#define MURMUR_C1 0xcc9e2d51u
#define MURMUR_C2 0x1b873593u

static void
put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint32_t
rotl32(uint32_t x, int r)
{
    return (x << r) | (x >> (32 - r));
}

/* MurmurHash3 x86_32 with seed 0 over n bytes, n a multiple of 4 (the key is 44). */
static uint32_t
murmur3(const uint8_t *p, size_t n)
{
    uint32_t h = 0, k;
    size_t i;

    for (i = 0; i + 4 <= n; i += 4) {
        k = (uint32_t)p[i] | ((uint32_t)p[i + 1] << 8) | ((uint32_t)p[i + 2] << 16) |
            ((uint32_t)p[i + 3] << 24);
        k = rotl32(k * MURMUR_C1, 15) * MURMUR_C2;
        h = rotl32(h ^ k, 13) * 5 + 0xe6546b64u;
    }
    h ^= (uint32_t)n;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

/* Fills the key from the addresses, ports, protocol and version in row. */
static void
key_fill(FpcDecoded *row, const uint8_t *src, const uint8_t *dst, int key_vlan)
{
    int cmp = memcmp(src, dst, 16);
    int reverse = cmp > 0 || (cmp == 0 && row->sport > row->dport);
    uint8_t *k = row->key;

    memcpy(k, reverse ? dst : src, 16);
    memcpy(k + 16, reverse ? src : dst, 16);
    put_be16(k + 32, reverse ? row->dport : row->sport);
    put_be16(k + 34, reverse ? row->sport : row->dport);
    k[36] = row->proto;
    k[37] = row->ip_version;
    put_be16(k + 38, key_vlan && row->vlan_count > 0 ? row->vlan[0] : 0);
    put_be16(k + 40, key_vlan && row->vlan_count > 1 ? row->vlan[1] : 0);
    k[42] = k[43] = 0;
    row->reverse = (uint8_t)reverse;
}

void
fpc_key_build(FpcDecoded *row, const uint8_t *pkt, int key_vlan)
{
    if (!fpc_key_transaction(row, pkt, key_vlan)) {
        key_fill(row, row->src, row->dst, key_vlan);
    }
    row->hash = murmur3(row->key, FPC_KEY_LEN);
}

static int
is_broadcast(const uint8_t *mac)
{
    static const uint8_t all[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

    return memcmp(mac, all, 6) == 0;
}

void
fpc_key_build_link(FpcDecoded *row, int key_vlan)
{
    uint8_t src[16] = {0}, dst[16] = {0};

    if (!(row->dst_mac[0] & 1) || is_broadcast(row->dst_mac)) {
        memcpy(src, row->src_mac, 6);
    }
    memcpy(dst, row->dst_mac, 6);
    row->proto = 0;
    row->ip_version = 0;
    row->sport = row->dport = 0;
    key_fill(row, src, dst, key_vlan);
    put_be16(row->key + 42, row->ethertype);
    row->hash = murmur3(row->key, FPC_KEY_LEN);
}
