#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include "shim.h"

int rvs_errno(void) { return rte_errno; }
unsigned rvs_lcore_id(void) { return rte_lcore_id(); }

uint16_t rvs_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t rvs_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *rvs_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }

int rvs_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void rvs_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
uint32_t rvs_pktmbuf_pkt_len(const struct rte_mbuf *m) { return m->pkt_len; }
uint16_t rvs_pktmbuf_nb_segs(const struct rte_mbuf *m) { return m->nb_segs; }
uint16_t rvs_pktmbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }
uint16_t rvs_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }
uint32_t rvs_pktmbuf_rss_hash(const struct rte_mbuf *m) { return m->hash.rss; }
uint64_t rvs_pktmbuf_ol_flags(const struct rte_mbuf *m) { return m->ol_flags; }
int rvs_pktmbuf_rx_ip_cksum_good(const struct rte_mbuf *m)
{
	return (m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_GOOD;
}

void rvs_pktmbuf_tx_ipv4_cksum(struct rte_mbuf *m, uint16_t l2_len, uint16_t l3_len)
{
	m->l2_len = l2_len;
	m->l3_len = l3_len;
	m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
}

uint64_t rvs_tx_offload_ipv4_cksum(void) { return RTE_ETH_TX_OFFLOAD_IPV4_CKSUM; }

uint8_t *rvs_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
	return (uint8_t *)rte_pktmbuf_prepend(m, len);
}

uint8_t *rvs_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return (uint8_t *)rte_pktmbuf_append(m, len);
}

uint8_t *rvs_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{
	return (uint8_t *)rte_pktmbuf_adj(m, len);
}

int rvs_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }

unsigned rvs_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n)
{
	return rte_ring_enqueue_burst(r, objs, n, NULL);
}

unsigned rvs_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n)
{
	return rte_ring_dequeue_burst(r, objs, n, NULL);
}

unsigned rvs_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }

uint64_t rvs_rdtsc(void) { return rte_rdtsc(); }
uint64_t rvs_tsc_hz(void) { return rte_get_tsc_hz(); }

size_t rvs_sizeof(enum rvs_layout_type t)
{
	switch (t) {
	case RVS_LAYOUT_MBUF: return sizeof(struct rte_mbuf);
	case RVS_LAYOUT_ETH_CONF: return sizeof(struct rte_eth_conf);
	case RVS_LAYOUT_ETH_DEV_INFO: return sizeof(struct rte_eth_dev_info);
	case RVS_LAYOUT_ETH_STATS: return sizeof(struct rte_eth_stats);
	case RVS_LAYOUT_ETH_LINK: return sizeof(struct rte_eth_link);
	case RVS_LAYOUT_ETH_XSTAT: return sizeof(struct rte_eth_xstat);
	case RVS_LAYOUT_ETH_RXCONF: return sizeof(struct rte_eth_rxconf);
	case RVS_LAYOUT_ETH_TXCONF: return sizeof(struct rte_eth_txconf);
	case RVS_LAYOUT_ETH_RSS_CONF: return sizeof(struct rte_eth_rss_conf);
	}
	return 0;
}

uint64_t rvs_rss_bits(enum rvs_rss_set s)
{
	switch (s) {
	case RVS_RSS_IP: return RTE_ETH_RSS_IP;
	case RVS_RSS_TCP: return RTE_ETH_RSS_TCP;
	case RVS_RSS_UDP: return RTE_ETH_RSS_UDP;
	case RVS_RSS_SCTP: return RTE_ETH_RSS_SCTP;
	case RVS_RSS_L3_SRC_ONLY: return RTE_ETH_RSS_L3_SRC_ONLY;
	case RVS_RSS_L3_DST_ONLY: return RTE_ETH_RSS_L3_DST_ONLY;
	case RVS_RSS_L4_SRC_ONLY: return RTE_ETH_RSS_L4_SRC_ONLY;
	case RVS_RSS_L4_DST_ONLY: return RTE_ETH_RSS_L4_DST_ONLY;
	}
	return 0;
}

long rvs_dump(enum rvs_dump what, const char *name, char **out)
{
	size_t len = 0;
	*out = NULL;
	FILE *f = open_memstream(out, &len);
	if (f == NULL)
		return -2;
	long found = 0;
	switch (what) {
	case RVS_DUMP_MEMPOOL:
		if (name == NULL) {
			rte_mempool_list_dump(f);
		} else {
			struct rte_mempool *mp = rte_mempool_lookup(name);
			if (mp != NULL)
				rte_mempool_dump(f, mp);
			else
				found = -1;
		}
		break;
	case RVS_DUMP_RING:
		if (name == NULL) {
			rte_ring_list_dump(f);
		} else {
			struct rte_ring *r = rte_ring_lookup(name);
			if (r != NULL)
				rte_ring_dump(f, r);
			else
				found = -1;
		}
		break;
	case RVS_DUMP_MEMZONE: rte_memzone_dump(f); break;
	case RVS_DUMP_PHYSMEM: rte_dump_physmem_layout(f); break;
	case RVS_DUMP_LCORES: rte_lcore_dump(f); break;
	case RVS_DUMP_DEVARGS: rte_devargs_dump(f); break;
	case RVS_DUMP_LOG_TYPES: rte_log_dump(f); break;
	}
	if (fclose(f) != 0 || *out == NULL) {
		free(*out);
		*out = NULL;
		return -2;
	}
	return found < 0 ? found : (long)len;
}

static ssize_t rvs_cookie_write(void *cookie, const char *buf, size_t size)
{
	rvs_log_write_fn write = (rvs_log_write_fn)cookie;
	return write(buf, size);
}

FILE *rvs_log_stream(rvs_log_write_fn write)
{
	cookie_io_functions_t funcs = { .write = rvs_cookie_write };
	return fopencookie((void *)write, "w", funcs);
}
