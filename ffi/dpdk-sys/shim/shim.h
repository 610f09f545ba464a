/* Out-of-line wrappers for the DPDK static inline functions and macros rvs needs. */
#ifndef RVS_DPDK_SHIM_H
#define RVS_DPDK_SHIM_H

#include <stdint.h>
#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_log.h>
#include <rte_dev.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_ring.h>
#include <rte_cycles.h>
#include <rte_malloc.h>

int rvs_errno(void);
unsigned rvs_lcore_id(void);

uint16_t rvs_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t rvs_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

struct rte_mbuf *rvs_pktmbuf_alloc(struct rte_mempool *mp);
int rvs_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count);
void rvs_pktmbuf_free(struct rte_mbuf *m);
uint32_t rvs_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t rvs_pktmbuf_nb_segs(const struct rte_mbuf *m);
uint16_t rvs_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t rvs_pktmbuf_tailroom(const struct rte_mbuf *m);
uint32_t rvs_pktmbuf_rss_hash(const struct rte_mbuf *m);
uint64_t rvs_pktmbuf_ol_flags(const struct rte_mbuf *m);
/* The NIC checked the IPv4 header checksum and found it good. */
int rvs_pktmbuf_rx_ip_cksum_good(const struct rte_mbuf *m);
/* Asks the port to compute the IPv4 header checksum of an mbuf on transmit. */
void rvs_pktmbuf_tx_ipv4_cksum(struct rte_mbuf *m, uint16_t l2_len, uint16_t l3_len);
/* RTE_ETH_TX_OFFLOAD_IPV4_CKSUM (an RTE_BIT64 macro bindgen cannot evaluate). */
uint64_t rvs_tx_offload_ipv4_cksum(void);
uint8_t *rvs_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
uint8_t *rvs_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
uint8_t *rvs_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int rvs_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);

unsigned rvs_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n);
unsigned rvs_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n);
unsigned rvs_ring_count(const struct rte_ring *r);

uint64_t rvs_rdtsc(void);
uint64_t rvs_tsc_hz(void);



/* sizeof as gcc sees it, for the layout tests of the bindgen types. */
enum rvs_layout_type {
	RVS_LAYOUT_MBUF, RVS_LAYOUT_ETH_CONF, RVS_LAYOUT_ETH_DEV_INFO, RVS_LAYOUT_ETH_STATS,
	RVS_LAYOUT_ETH_LINK, RVS_LAYOUT_ETH_XSTAT, RVS_LAYOUT_ETH_RXCONF, RVS_LAYOUT_ETH_TXCONF,
	RVS_LAYOUT_ETH_RSS_CONF
};
size_t rvs_sizeof(enum rvs_layout_type t);

/* RSS hash-field sets are RTE_BIT64() macros bindgen cannot evaluate. */
enum rvs_rss_set { RVS_RSS_IP, RVS_RSS_TCP, RVS_RSS_UDP, RVS_RSS_SCTP, RVS_RSS_L3_SRC_ONLY,
	RVS_RSS_L3_DST_ONLY, RVS_RSS_L4_SRC_ONLY, RVS_RSS_L4_DST_ONLY };
uint64_t rvs_rss_bits(enum rvs_rss_set s);

/* testpmd's `dump` objects, written by DPDK's own dump functions. */
enum rvs_dump { RVS_DUMP_MEMPOOL, RVS_DUMP_RING, RVS_DUMP_MEMZONE, RVS_DUMP_PHYSMEM,
	RVS_DUMP_LCORES, RVS_DUMP_DEVARGS, RVS_DUMP_LOG_TYPES };
/* Writes dump `what` (of the mempool or ring called `name` only, where not NULL) into a
 * buffer in *out, which the caller frees with free(); its length, -1 when no mempool or
 * ring has that name, -2 when the buffer could not be had. */
long rvs_dump(enum rvs_dump what, const char *name, char **out);

/* A stdio stream whose writes go to `write` (fopencookie), for rte_openlog_stream. */
typedef long (*rvs_log_write_fn)(const char *buf, size_t size);
FILE *rvs_log_stream(rvs_log_write_fn write);
#endif
