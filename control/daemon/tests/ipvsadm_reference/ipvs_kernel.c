/*
 * A stand-in for the kernel's IPVS, for comparing rvsadm with the genuine ipvsadm binary.
 *
 * Loaded with LD_PRELOAD into Debian's /usr/sbin/ipvsadm, it answers the generic netlink
 * socket that libnl opens: the controller's family lookup for "IPVS" and the IPVS commands,
 * with the kernel's checks and errno values (net/netfilter/ipvs/ip_vs_ctl.c, Linux 6.1),
 * keeping the state in the file named by IPVS_STATE between runs. It also serves
 * /proc/net/ip_vs_conn from IPVS_STATE.conn (the header line when that file is absent).
 * Nothing here comes from ipvsadm or the kernel: constants are the uapi header's.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/genetlink.h>
#include <linux/ip_vs.h>
#include <linux/netlink.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define FAMILY_ID 0x1c
#define MAX_SERVICES 64
#define MAX_DESTS 64
#define MAX_FDS 8
#define MAX_REPLIES 256

struct dest {
	int used;
	uint16_t af;
	uint8_t addr[16];
	uint16_t port; /* network order */
	uint32_t fwd, weight, u_thresh, l_thresh;
	uint8_t tun_type;
	uint16_t tun_port, tun_flags;
	uint32_t order;
};

struct service {
	int used;
	uint16_t af, protocol;
	uint8_t addr[16];
	uint16_t port; /* network order */
	uint32_t fwmark, flags, timeout, netmask;
	char sched[IP_VS_SCHEDNAME_MAXLEN];
	char pe[IP_VS_PENAME_MAXLEN];
	struct dest dests[MAX_DESTS];
};

struct sync_daemon {
	uint32_t state, syncid;
	char ifn[IP_VS_IFNAME_MAXLEN];
	uint16_t maxlen, port;
	uint8_t ttl;
	uint16_t group_af;
	uint8_t group[16];
};

struct state {
	uint32_t tcp, tcp_fin, udp, order;
	struct service services[MAX_SERVICES];
	struct sync_daemon daemons[2]; /* master, backup */
};

static struct state st;

static const char *state_path(void)
{
	const char *p = getenv("IPVS_STATE");
	return p ? p : "/tmp/ipvs-kernel.state";
}

static void load_state(void)
{
	FILE *f = fopen(state_path(), "rb");
	memset(&st, 0, sizeof(st));
	st.tcp = 900;
	st.tcp_fin = 120;
	st.udp = 300;
	if (!f)
		return;
	if (fread(&st, sizeof(st), 1, f) != 1) {
		memset(&st, 0, sizeof(st));
		st.tcp = 900;
		st.tcp_fin = 120;
		st.udp = 300;
	}
	fclose(f);
}

static void save_state(void)
{
	FILE *f = fopen(state_path(), "wb");
	if (!f)
		return;
	fwrite(&st, sizeof(st), 1, f);
	fclose(f);
}

/* ---- attributes ---- */

struct attrs {
	struct nlattr *a[32];
};

static void parse_attrs(struct attrs *out, void *data, int len)
{
	memset(out, 0, sizeof(*out));
	while (len >= (int)NLA_HDRLEN) {
		struct nlattr *nla = data;
		int type = nla->nla_type & NLA_TYPE_MASK;
		if (nla->nla_len < NLA_HDRLEN || nla->nla_len > len)
			return;
		if (type < 32)
			out->a[type] = nla;
		int step = NLA_ALIGN(nla->nla_len);
		data = (char *)data + step;
		len -= step;
	}
}

static void *payload(struct nlattr *nla) { return (char *)nla + NLA_HDRLEN; }
static int payload_len(struct nlattr *nla) { return nla->nla_len - NLA_HDRLEN; }
static uint32_t get_u32(struct nlattr *nla) { uint32_t v = 0; memcpy(&v, payload(nla), payload_len(nla) < 4 ? payload_len(nla) : 4); return v; }
static uint16_t get_u16(struct nlattr *nla) { uint16_t v = 0; memcpy(&v, payload(nla), payload_len(nla) < 2 ? payload_len(nla) : 2); return v; }

static void nested(struct attrs *out, struct nlattr *nla)
{
	parse_attrs(out, payload(nla), payload_len(nla));
}

/* ---- replies ---- */

struct queue {
	int fd;
	int count;
	size_t len[MAX_REPLIES];
	char *buf[MAX_REPLIES];
};

static struct queue queues[MAX_FDS];

static struct queue *queue_of(int fd)
{
	for (int i = 0; i < MAX_FDS; i++)
		if (queues[i].fd == fd && fd > 0)
			return &queues[i];
	return NULL;
}

struct msg {
	char buf[8192];
	size_t len;
	size_t nests[4];
	int depth;
};

static void msg_start(struct msg *m, const struct nlmsghdr *req, uint16_t type, uint16_t flags, uint8_t cmd)
{
	struct nlmsghdr *h = (struct nlmsghdr *)m->buf;
	memset(m, 0, sizeof(*m));
	h->nlmsg_type = type;
	h->nlmsg_flags = flags;
	h->nlmsg_seq = req->nlmsg_seq;
	h->nlmsg_pid = req->nlmsg_pid;
	m->len = NLMSG_HDRLEN;
	struct genlmsghdr *g = (struct genlmsghdr *)(m->buf + m->len);
	g->cmd = cmd;
	g->version = 1;
	m->len += GENL_HDRLEN;
}

static void put(struct msg *m, uint16_t type, const void *data, size_t len)
{
	struct nlattr *nla = (struct nlattr *)(m->buf + m->len);
	nla->nla_type = type;
	nla->nla_len = NLA_HDRLEN + len;
	memcpy(m->buf + m->len + NLA_HDRLEN, data, len);
	memset(m->buf + m->len + NLA_HDRLEN + len, 0, NLA_ALIGN(len) - len);
	m->len += NLA_HDRLEN + NLA_ALIGN(len);
}

static void put_u8(struct msg *m, uint16_t t, uint8_t v) { put(m, t, &v, 1); }
static void put_u16(struct msg *m, uint16_t t, uint16_t v) { put(m, t, &v, 2); }
static void put_u32(struct msg *m, uint16_t t, uint32_t v) { put(m, t, &v, 4); }
static void put_u64(struct msg *m, uint16_t t, uint64_t v) { put(m, t, &v, 8); }
static void put_str(struct msg *m, uint16_t t, const char *s) { put(m, t, s, strlen(s) + 1); }

static void nest_start(struct msg *m, uint16_t type)
{
	m->nests[m->depth++] = m->len;
	put(m, type | NLA_F_NESTED, NULL, 0);
}

static void nest_end(struct msg *m)
{
	struct nlattr *nla = (struct nlattr *)(m->buf + m->nests[--m->depth]);
	nla->nla_len = m->len - m->nests[m->depth];
}

static void enqueue(struct queue *q, struct msg *m)
{
	if (q->count >= MAX_REPLIES)
		return;
	((struct nlmsghdr *)m->buf)->nlmsg_len = m->len;
	q->buf[q->count] = malloc(m->len);
	memcpy(q->buf[q->count], m->buf, m->len);
	q->len[q->count++] = m->len;
}

/* An NLMSG_ERROR carrying -err (0: an acknowledgement). */
static void answer_error(struct queue *q, const struct nlmsghdr *req, int err)
{
	struct msg m;
	struct nlmsghdr *h = (struct nlmsghdr *)m.buf;
	memset(&m, 0, sizeof(m));
	h->nlmsg_type = NLMSG_ERROR;
	h->nlmsg_flags = err ? 0 : NLM_F_CAPPED;
	h->nlmsg_seq = req->nlmsg_seq;
	h->nlmsg_pid = req->nlmsg_pid;
	struct nlmsgerr *e = (struct nlmsgerr *)(m.buf + NLMSG_HDRLEN);
	e->error = -err;
	e->msg = *req;
	m.len = NLMSG_HDRLEN + sizeof(*e);
	enqueue(q, &m);
}

static void answer_done(struct queue *q, const struct nlmsghdr *req)
{
	struct msg m;
	struct nlmsghdr *h = (struct nlmsghdr *)m.buf;
	memset(&m, 0, sizeof(m));
	h->nlmsg_type = NLMSG_DONE;
	h->nlmsg_flags = NLM_F_MULTI;
	h->nlmsg_seq = req->nlmsg_seq;
	h->nlmsg_pid = req->nlmsg_pid;
	m.len = NLMSG_HDRLEN + 4;
	enqueue(q, &m);
}

static void put_stats(struct msg *m, uint16_t type, int wide)
{
	nest_start(m, type);
	for (uint16_t t = IPVS_STATS_ATTR_CONNS; t <= IPVS_STATS_ATTR_OUTBPS; t++) {
		if (wide || t == IPVS_STATS_ATTR_INBYTES || t == IPVS_STATS_ATTR_OUTBYTES)
			put_u64(m, t, 0);
		else
			put_u32(m, t, 0);
	}
	nest_end(m);
}

/* ---- the kernel's logic ---- */

static const char *schedulers[] = {"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh",
				   "sed", "nq", "fo", "ovf", "mh", "twos", NULL};

static int known_scheduler(const char *name)
{
	for (int i = 0; schedulers[i]; i++)
		if (!strcmp(name, schedulers[i]))
			return 1;
	return 0;
}

struct service_key {
	uint16_t af, protocol;
	uint8_t addr[16];
	uint16_t port;
	uint32_t fwmark;
};

/* Reads the service's identity; -EINVAL where it is incomplete, as the kernel's parse. */
static int service_key(struct attrs *sa, struct service_key *k)
{
	memset(k, 0, sizeof(*k));
	if (!sa->a[IPVS_SVC_ATTR_AF])
		return -EINVAL;
	k->af = get_u16(sa->a[IPVS_SVC_ATTR_AF]);
	if (k->af != AF_INET && k->af != AF_INET6)
		return -EAFNOSUPPORT;
	if (sa->a[IPVS_SVC_ATTR_FWMARK]) {
		k->fwmark = get_u32(sa->a[IPVS_SVC_ATTR_FWMARK]);
		k->protocol = IPPROTO_TCP;
		return 0;
	}
	if (!sa->a[IPVS_SVC_ATTR_PROTOCOL] || !sa->a[IPVS_SVC_ATTR_ADDR] || !sa->a[IPVS_SVC_ATTR_PORT])
		return -EINVAL;
	k->protocol = get_u16(sa->a[IPVS_SVC_ATTR_PROTOCOL]);
	memcpy(k->addr, payload(sa->a[IPVS_SVC_ATTR_ADDR]),
	       payload_len(sa->a[IPVS_SVC_ATTR_ADDR]) < 16 ? payload_len(sa->a[IPVS_SVC_ATTR_ADDR]) : 16);
	k->port = get_u16(sa->a[IPVS_SVC_ATTR_PORT]);
	return 0;
}

static struct service *find_service(const struct service_key *k)
{
	for (int i = 0; i < MAX_SERVICES; i++) {
		struct service *s = &st.services[i];
		if (!s->used || s->af != k->af)
			continue;
		if (k->fwmark) {
			if (s->fwmark == k->fwmark)
				return s;
		} else if (!s->fwmark && s->protocol == k->protocol && s->port == k->port &&
			   !memcmp(s->addr, k->addr, k->af == AF_INET ? 4 : 16)) {
			return s;
		}
	}
	return NULL;
}

static int addr_is_unicast(uint16_t af, const uint8_t *a)
{
	if (af == AF_INET6) {
		if (a[0] == 0xff)
			return 0;
		if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
			return 0; /* link-local */
		static const uint8_t zero[16];
		if (!memcmp(a, zero, 10) && a[10] == 0xff && a[11] == 0xff)
			return 0; /* IPv4-mapped: IPV6_ADDR_MAPPED, not unicast */
		return memcmp(a, zero, 16) != 0;
	}
	uint32_t v = ntohl(*(const uint32_t *)a);
	if (v == 0 || v == 0xffffffff || (v >> 28) == 0xe)
		return 0; /* any, broadcast, multicast */
	return 1;
}

/* A server at one of the director's own addresses (IPVS_LOCAL, comma-separated) is served
 * locally: the kernel turns its forwarding method into LOCALNODE. */
static int is_local(uint16_t af, const uint8_t *a)
{
	const char *list = getenv("IPVS_LOCAL");
	char text[INET6_ADDRSTRLEN], probe[INET6_ADDRSTRLEN + 2], all[1024];
	if (!list || !inet_ntop(af, a, text, sizeof(text)))
		return 0;
	snprintf(all, sizeof(all), ",%s,", list);
	snprintf(probe, sizeof(probe), ",%s,", text);
	return strstr(all, probe) != NULL;
}

static void fill_service(struct msg *m, struct service *s)
{
	nest_start(m, IPVS_CMD_ATTR_SERVICE);
	put_u16(m, IPVS_SVC_ATTR_AF, s->af);
	if (s->fwmark) {
		put_u32(m, IPVS_SVC_ATTR_FWMARK, s->fwmark);
	} else {
		put_u16(m, IPVS_SVC_ATTR_PROTOCOL, s->protocol);
		put(m, IPVS_SVC_ATTR_ADDR, s->addr, 16);
		put_u16(m, IPVS_SVC_ATTR_PORT, s->port);
	}
	put_str(m, IPVS_SVC_ATTR_SCHED_NAME, s->sched);
	if (s->pe[0])
		put_str(m, IPVS_SVC_ATTR_PE_NAME, s->pe);
	struct ip_vs_flags fl = {.flags = s->flags, .mask = ~0u};
	put(m, IPVS_SVC_ATTR_FLAGS, &fl, sizeof(fl));
	put_u32(m, IPVS_SVC_ATTR_TIMEOUT, s->timeout);
	put_u32(m, IPVS_SVC_ATTR_NETMASK, s->netmask);
	put_stats(m, IPVS_SVC_ATTR_STATS, 0);
	put_stats(m, IPVS_SVC_ATTR_STATS64, 1);
	nest_end(m);
}

static void fill_dest(struct msg *m, struct dest *d)
{
	nest_start(m, IPVS_CMD_ATTR_DEST);
	put(m, IPVS_DEST_ATTR_ADDR, d->addr, 16);
	put_u16(m, IPVS_DEST_ATTR_PORT, d->port);
	put_u32(m, IPVS_DEST_ATTR_FWD_METHOD, d->fwd);
	put_u32(m, IPVS_DEST_ATTR_WEIGHT, d->weight);
	put_u8(m, IPVS_DEST_ATTR_TUN_TYPE, d->tun_type);
	put_u16(m, IPVS_DEST_ATTR_TUN_PORT, d->tun_port);
	put_u16(m, IPVS_DEST_ATTR_TUN_FLAGS, d->tun_flags);
	put_u32(m, IPVS_DEST_ATTR_U_THRESH, d->u_thresh);
	put_u32(m, IPVS_DEST_ATTR_L_THRESH, d->l_thresh);
	put_u32(m, IPVS_DEST_ATTR_ACTIVE_CONNS, 0);
	put_u32(m, IPVS_DEST_ATTR_INACT_CONNS, 0);
	put_u32(m, IPVS_DEST_ATTR_PERSIST_CONNS, 0);
	put_u16(m, IPVS_DEST_ATTR_ADDR_FAMILY, d->af);
	put_stats(m, IPVS_DEST_ATTR_STATS, 0);
	put_stats(m, IPVS_DEST_ATTR_STATS64, 1);
	nest_end(m);
}

static int set_service(struct attrs *ca, int cmd)
{
	struct attrs sa;
	struct service_key k;
	if (!ca->a[IPVS_CMD_ATTR_SERVICE])
		return -EINVAL;
	nested(&sa, ca->a[IPVS_CMD_ATTR_SERVICE]);
	int err = service_key(&sa, &k);
	if (err)
		return err;
	struct service *s = find_service(&k);
	if (cmd == IPVS_CMD_DEL_SERVICE) {
		if (!s)
			return -ESRCH;
		memset(s, 0, sizeof(*s));
		return 0;
	}
	if (!sa.a[IPVS_SVC_ATTR_SCHED_NAME] || !sa.a[IPVS_SVC_ATTR_FLAGS] ||
	    !sa.a[IPVS_SVC_ATTR_TIMEOUT] || !sa.a[IPVS_SVC_ATTR_NETMASK])
		return -EINVAL;
	if (cmd == IPVS_CMD_NEW_SERVICE && s)
		return -EEXIST;
	if (cmd == IPVS_CMD_SET_SERVICE && !s)
		return -ESRCH;
	const char *sched = payload(sa.a[IPVS_SVC_ATTR_SCHED_NAME]);
	const char *pe = sa.a[IPVS_SVC_ATTR_PE_NAME] ? payload(sa.a[IPVS_SVC_ATTR_PE_NAME]) : "";
	uint32_t netmask = get_u32(sa.a[IPVS_SVC_ATTR_NETMASK]);
	struct ip_vs_flags fl;
	memcpy(&fl, payload(sa.a[IPVS_SVC_ATTR_FLAGS]), sizeof(fl));
	if (sched[0] && !known_scheduler(sched))
		return -ENOENT;
	if (pe[0] && strcmp(pe, "sip"))
		return -ENOENT;
	if (k.af == AF_INET6 && (netmask < 1 || netmask > 128))
		return -EINVAL;
	if (!s) {
		for (int i = 0; i < MAX_SERVICES && !s; i++)
			if (!st.services[i].used)
				s = &st.services[i];
		if (!s)
			return -ENOMEM;
		memset(s, 0, sizeof(*s));
		s->used = 1;
		s->af = k.af;
		s->protocol = k.protocol;
		memcpy(s->addr, k.addr, 16);
		s->port = k.port;
		s->fwmark = k.fwmark;
	}
	uint32_t old = cmd == IPVS_CMD_SET_SERVICE ? s->flags : 0;
	s->flags = ((old & ~fl.mask) | (fl.flags & fl.mask)) | IP_VS_SVC_F_HASHED;
	snprintf(s->sched, sizeof(s->sched), "%s", sched[0] ? sched : s->sched);
	snprintf(s->pe, sizeof(s->pe), "%s", pe);
	s->timeout = get_u32(sa.a[IPVS_SVC_ATTR_TIMEOUT]);
	s->netmask = netmask;
	return 0;
}

static int set_dest(struct attrs *ca, int cmd)
{
	struct attrs sa, da;
	struct service_key k;
	if (!ca->a[IPVS_CMD_ATTR_SERVICE] || !ca->a[IPVS_CMD_ATTR_DEST])
		return -EINVAL;
	nested(&sa, ca->a[IPVS_CMD_ATTR_SERVICE]);
	nested(&da, ca->a[IPVS_CMD_ATTR_DEST]);
	int err = service_key(&sa, &k);
	if (err)
		return err;
	if (!da.a[IPVS_DEST_ATTR_ADDR] || !da.a[IPVS_DEST_ATTR_PORT])
		return -EINVAL;
	int full = cmd != IPVS_CMD_DEL_DEST;
	if (full && (!da.a[IPVS_DEST_ATTR_FWD_METHOD] || !da.a[IPVS_DEST_ATTR_WEIGHT] ||
		     !da.a[IPVS_DEST_ATTR_U_THRESH] || !da.a[IPVS_DEST_ATTR_L_THRESH]))
		return -EINVAL;
	struct service *s = find_service(&k);
	if (!s)
		return -ESRCH;
	struct dest want;
	memset(&want, 0, sizeof(want));
	want.af = da.a[IPVS_DEST_ATTR_ADDR_FAMILY] ? get_u16(da.a[IPVS_DEST_ATTR_ADDR_FAMILY]) : 0;
	if (!want.af)
		want.af = s->af;
	if (want.af != AF_INET && want.af != AF_INET6)
		return -EAFNOSUPPORT;
	memcpy(want.addr, payload(da.a[IPVS_DEST_ATTR_ADDR]),
	       payload_len(da.a[IPVS_DEST_ATTR_ADDR]) < 16 ? payload_len(da.a[IPVS_DEST_ATTR_ADDR]) : 16);
	want.port = get_u16(da.a[IPVS_DEST_ATTR_PORT]);
	if (full) {
		want.fwd = get_u32(da.a[IPVS_DEST_ATTR_FWD_METHOD]) & IP_VS_CONN_F_FWD_MASK;
		want.weight = get_u32(da.a[IPVS_DEST_ATTR_WEIGHT]);
		want.u_thresh = get_u32(da.a[IPVS_DEST_ATTR_U_THRESH]);
		want.l_thresh = get_u32(da.a[IPVS_DEST_ATTR_L_THRESH]);
		if (da.a[IPVS_DEST_ATTR_TUN_TYPE])
			want.tun_type = *(uint8_t *)payload(da.a[IPVS_DEST_ATTR_TUN_TYPE]);
		if (da.a[IPVS_DEST_ATTR_TUN_PORT])
			want.tun_port = get_u16(da.a[IPVS_DEST_ATTR_TUN_PORT]);
		if (da.a[IPVS_DEST_ATTR_TUN_FLAGS])
			want.tun_flags = get_u16(da.a[IPVS_DEST_ATTR_TUN_FLAGS]);
		if (want.af != s->af) {
			if (st.daemons[0].state || st.daemons[1].state)
				return -EINVAL;
			if (want.fwd != IP_VS_CONN_F_TUNNEL)
				return -EINVAL;
		}
	}
	struct dest *d = NULL;
	for (int i = 0; i < MAX_DESTS; i++) {
		struct dest *x = &s->dests[i];
		if (x->used && x->af == want.af && x->port == want.port &&
		    !memcmp(x->addr, want.addr, want.af == AF_INET ? 4 : 16))
			d = x;
	}
	if (cmd == IPVS_CMD_DEL_DEST) {
		if (!d)
			return -ENOENT;
		memset(d, 0, sizeof(*d));
		return 0;
	}
	if ((int32_t)want.weight < 0)
		return -ERANGE;
	if (want.l_thresh > want.u_thresh)
		return -ERANGE;
	if (want.tun_type == IP_VS_CONN_F_TUNNEL_TYPE_GUE && want.tun_port == 0)
		return -EINVAL;
	if (cmd == IPVS_CMD_NEW_DEST) {
		if (d)
			return -EEXIST;
		if (!addr_is_unicast(want.af, want.addr))
			return -EINVAL;
		for (int i = 0; i < MAX_DESTS && !d; i++)
			if (!s->dests[i].used)
				d = &s->dests[i];
		if (!d)
			return -ENOMEM;
		want.order = ++st.order;
	} else {
		if (!d)
			return -ENOENT;
		want.order = d->order;
	}
	if (is_local(want.af, want.addr))
		want.fwd = IP_VS_CONN_F_LOCALNODE;
	want.used = 1;
	*d = want;
	return 0;
}

static int set_timeouts(struct attrs *ca)
{
	uint32_t t[3] = {0, 0, 0};
	int types[3] = {IPVS_CMD_ATTR_TIMEOUT_TCP, IPVS_CMD_ATTR_TIMEOUT_TCP_FIN, IPVS_CMD_ATTR_TIMEOUT_UDP};
	for (int i = 0; i < 3; i++) {
		if (ca->a[types[i]])
			t[i] = get_u32(ca->a[types[i]]);
		if (t[i] > 0x7fffffff / 250)
			return -EINVAL;
	}
	if (t[0])
		st.tcp = t[0];
	if (t[1])
		st.tcp_fin = t[1];
	if (t[2])
		st.udp = t[2];
	return 0;
}

static int set_daemon(struct attrs *ca, int cmd)
{
	struct attrs da;
	if (!ca->a[IPVS_CMD_ATTR_DAEMON])
		return -EINVAL;
	nested(&da, ca->a[IPVS_CMD_ATTR_DAEMON]);
	if (!da.a[IPVS_DAEMON_ATTR_STATE])
		return -EINVAL;
	uint32_t state = get_u32(da.a[IPVS_DAEMON_ATTR_STATE]);
	int slot = state == IP_VS_STATE_BACKUP ? 1 : 0;
	if (state != IP_VS_STATE_MASTER && state != IP_VS_STATE_BACKUP)
		return -EINVAL;
	struct sync_daemon *d = &st.daemons[slot];
	if (cmd == IPVS_CMD_DEL_DAEMON) {
		if (!d->state)
			return -ESRCH;
		memset(d, 0, sizeof(*d));
		return 0;
	}
	if (!da.a[IPVS_DAEMON_ATTR_MCAST_IFN] || !da.a[IPVS_DAEMON_ATTR_SYNC_ID])
		return -EINVAL;
	/* The sync protocol cannot carry mixed-family services. */
	for (int i = 0; i < MAX_SERVICES; i++)
		for (int j = 0; st.services[i].used && j < MAX_DESTS; j++)
			if (st.services[i].dests[j].used &&
			    st.services[i].dests[j].af != st.services[i].af)
				return -EINVAL;
	if (d->state)
		return -EEXIST;
	const char *ifn = payload(da.a[IPVS_DAEMON_ATTR_MCAST_IFN]);
	const char *known = getenv("IPVS_INTERFACES");
	char list[256];
	snprintf(list, sizeof(list), ",%s,", known ? known : "lo");
	char probe[IP_VS_IFNAME_MAXLEN + 3];
	snprintf(probe, sizeof(probe), ",%s,", ifn);
	if (!strstr(list, probe))
		return -ENODEV;
	memset(d, 0, sizeof(*d));
	d->state = state;
	snprintf(d->ifn, sizeof(d->ifn), "%s", ifn);
	d->syncid = get_u32(da.a[IPVS_DAEMON_ATTR_SYNC_ID]);
	d->maxlen = da.a[IPVS_DAEMON_ATTR_SYNC_MAXLEN] ? get_u16(da.a[IPVS_DAEMON_ATTR_SYNC_MAXLEN]) : 0;
	d->port = da.a[IPVS_DAEMON_ATTR_MCAST_PORT] ? get_u16(da.a[IPVS_DAEMON_ATTR_MCAST_PORT]) : 0;
	d->ttl = da.a[IPVS_DAEMON_ATTR_MCAST_TTL] ? *(uint8_t *)payload(da.a[IPVS_DAEMON_ATTR_MCAST_TTL]) : 0;
	if (da.a[IPVS_DAEMON_ATTR_MCAST_GROUP]) {
		d->group_af = AF_INET;
		memcpy(d->group, payload(da.a[IPVS_DAEMON_ATTR_MCAST_GROUP]), 4);
	} else if (da.a[IPVS_DAEMON_ATTR_MCAST_GROUP6]) {
		d->group_af = AF_INET6;
		memcpy(d->group, payload(da.a[IPVS_DAEMON_ATTR_MCAST_GROUP6]), 16);
	}
	/* The kernel's defaults: an MTU of 1500 less the IP and UDP headers, port 8848, TTL 1,
	 * group 224.0.0.81 (ff02::8848 for IPv6). */
	if (!d->maxlen || d->maxlen > 1500 - (d->group_af == AF_INET6 ? 48 : 28))
		d->maxlen = 1500 - (d->group_af == AF_INET6 ? 48 : 28);
	if (!d->port)
		d->port = 8848;
	if (!d->ttl)
		d->ttl = 1;
	if (!d->group_af) {
		d->group_af = AF_INET;
		uint32_t g = htonl(0xe0000051);
		memcpy(d->group, &g, 4);
	}
	return 0;
}

static void fill_daemon(struct msg *m, struct sync_daemon *d)
{
	nest_start(m, IPVS_CMD_ATTR_DAEMON);
	put_u32(m, IPVS_DAEMON_ATTR_STATE, d->state);
	put_str(m, IPVS_DAEMON_ATTR_MCAST_IFN, d->ifn);
	put_u32(m, IPVS_DAEMON_ATTR_SYNC_ID, d->syncid);
	put_u16(m, IPVS_DAEMON_ATTR_SYNC_MAXLEN, d->maxlen);
	put_u16(m, IPVS_DAEMON_ATTR_MCAST_PORT, d->port);
	put_u8(m, IPVS_DAEMON_ATTR_MCAST_TTL, d->ttl);
	if (d->group_af == AF_INET6)
		put(m, IPVS_DAEMON_ATTR_MCAST_GROUP6, d->group, 16);
	else
		put(m, IPVS_DAEMON_ATTR_MCAST_GROUP, d->group, 4);
	nest_end(m);
}

static int dest_newest_first(const void *a, const void *b)
{
	const struct dest *x = *(struct dest *const *)a, *y = *(struct dest *const *)b;
	return x->order < y->order ? 1 : x->order > y->order ? -1 : 0;
}

static void handle_ipvs(struct queue *q, struct nlmsghdr *req)
{
	struct genlmsghdr *g = NLMSG_DATA(req);
	struct attrs ca;
	int cmd = g->cmd, err = 0;
	struct msg m;
	parse_attrs(&ca, (char *)g + GENL_HDRLEN, req->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN);
	load_state();
	switch (cmd) {
	case IPVS_CMD_NEW_SERVICE:
	case IPVS_CMD_SET_SERVICE:
	case IPVS_CMD_DEL_SERVICE:
		err = set_service(&ca, cmd);
		break;
	case IPVS_CMD_NEW_DEST:
	case IPVS_CMD_SET_DEST:
	case IPVS_CMD_DEL_DEST:
		err = set_dest(&ca, cmd);
		break;
	case IPVS_CMD_FLUSH:
		memset(st.services, 0, sizeof(st.services));
		break;
	case IPVS_CMD_ZERO:
		if (ca.a[IPVS_CMD_ATTR_SERVICE]) {
			struct attrs sa;
			struct service_key k;
			nested(&sa, ca.a[IPVS_CMD_ATTR_SERVICE]);
			err = service_key(&sa, &k);
			if (!err && !find_service(&k))
				err = -ESRCH;
		}
		break;
	case IPVS_CMD_SET_CONFIG:
		err = set_timeouts(&ca);
		break;
	case IPVS_CMD_NEW_DAEMON:
	case IPVS_CMD_DEL_DAEMON:
		err = set_daemon(&ca, cmd);
		break;
	case IPVS_CMD_GET_INFO: {
		const char *size = getenv("IPVS_CONN_TAB_SIZE");
		msg_start(&m, req, FAMILY_ID, 0, IPVS_CMD_SET_INFO);
		put_u32(&m, IPVS_INFO_ATTR_VERSION, (1 << 16) | (2 << 8) | 1);
		put_u32(&m, IPVS_INFO_ATTR_CONN_TAB_SIZE, size ? (uint32_t)atoi(size) : 4096);
		enqueue(q, &m);
		break;
	}
	case IPVS_CMD_GET_CONFIG:
		msg_start(&m, req, FAMILY_ID, 0, IPVS_CMD_SET_CONFIG);
		put_u32(&m, IPVS_CMD_ATTR_TIMEOUT_TCP, st.tcp);
		put_u32(&m, IPVS_CMD_ATTR_TIMEOUT_TCP_FIN, st.tcp_fin);
		put_u32(&m, IPVS_CMD_ATTR_TIMEOUT_UDP, st.udp);
		enqueue(q, &m);
		break;
	case IPVS_CMD_GET_SERVICE:
		if (req->nlmsg_flags & NLM_F_DUMP) {
			for (int i = 0; i < MAX_SERVICES; i++) {
				if (!st.services[i].used)
					continue;
				msg_start(&m, req, FAMILY_ID, NLM_F_MULTI, IPVS_CMD_NEW_SERVICE);
				fill_service(&m, &st.services[i]);
				enqueue(q, &m);
			}
			answer_done(q, req);
			return;
		} else {
			struct attrs sa;
			struct service_key k;
			struct service *s = NULL;
			if (!ca.a[IPVS_CMD_ATTR_SERVICE]) {
				err = -EINVAL;
				break;
			}
			nested(&sa, ca.a[IPVS_CMD_ATTR_SERVICE]);
			err = service_key(&sa, &k);
			if (!err && !(s = find_service(&k)))
				err = -ESRCH;
			if (err)
				break;
			msg_start(&m, req, FAMILY_ID, 0, IPVS_CMD_NEW_SERVICE);
			fill_service(&m, s);
			enqueue(q, &m);
		}
		break;
	case IPVS_CMD_GET_DEST: {
		struct attrs sa;
		struct service_key k;
		struct service *s = NULL;
		if (ca.a[IPVS_CMD_ATTR_SERVICE]) {
			nested(&sa, ca.a[IPVS_CMD_ATTR_SERVICE]);
			if (!service_key(&sa, &k))
				s = find_service(&k);
		}
		if (s) {
			struct dest *order[MAX_DESTS];
			int n = 0;
			for (int i = 0; i < MAX_DESTS; i++)
				if (s->dests[i].used)
					order[n++] = &s->dests[i];
			qsort(order, n, sizeof(order[0]), dest_newest_first);
			for (int i = 0; i < n; i++) {
				msg_start(&m, req, FAMILY_ID, NLM_F_MULTI, IPVS_CMD_NEW_DEST);
				fill_dest(&m, order[i]);
				enqueue(q, &m);
			}
		}
		answer_done(q, req);
		return;
	}
	case IPVS_CMD_GET_DAEMON:
		for (int i = 0; i < 2; i++) {
			if (!st.daemons[i].state)
				continue;
			msg_start(&m, req, FAMILY_ID, NLM_F_MULTI, IPVS_CMD_NEW_DAEMON);
			fill_daemon(&m, &st.daemons[i]);
			enqueue(q, &m);
		}
		answer_done(q, req);
		return;
	default:
		err = -EOPNOTSUPP;
	}
	if (!err && cmd != IPVS_CMD_GET_INFO && cmd != IPVS_CMD_GET_CONFIG &&
	    cmd != IPVS_CMD_GET_SERVICE)
		save_state();
	answer_error(q, req, -err);
}

static void handle_ctrl(struct queue *q, struct nlmsghdr *req)
{
	struct genlmsghdr *g = NLMSG_DATA(req);
	struct attrs ca;
	parse_attrs(&ca, (char *)g + GENL_HDRLEN, req->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN);
	if (g->cmd != CTRL_CMD_GETFAMILY || !ca.a[CTRL_ATTR_FAMILY_NAME] ||
	    strcmp(payload(ca.a[CTRL_ATTR_FAMILY_NAME]), IPVS_GENL_NAME)) {
		answer_error(q, req, ENOENT);
		return;
	}
	struct msg m;
	msg_start(&m, req, GENL_ID_CTRL, 0, CTRL_CMD_NEWFAMILY);
	put_str(&m, CTRL_ATTR_FAMILY_NAME, IPVS_GENL_NAME);
	put_u16(&m, CTRL_ATTR_FAMILY_ID, FAMILY_ID);
	put_u32(&m, CTRL_ATTR_VERSION, IPVS_GENL_VERSION);
	put_u32(&m, CTRL_ATTR_HDRSIZE, 0);
	put_u32(&m, CTRL_ATTR_MAXATTR, IPVS_CMD_ATTR_MAX);
	enqueue(q, &m);
	answer_error(q, req, 0);
}

static void handle_request(struct queue *q, char *buf, size_t len)
{
	struct nlmsghdr *req = (struct nlmsghdr *)buf;
	if (len < NLMSG_HDRLEN + GENL_HDRLEN || req->nlmsg_len > len)
		return;
	if (req->nlmsg_type == GENL_ID_CTRL)
		handle_ctrl(q, req);
	else if (req->nlmsg_type == FAMILY_ID)
		handle_ipvs(q, req);
	else
		answer_error(q, req, EINVAL);
}

/* ---- the interposed calls ---- */

#define REAL(name, ret, ...) static ret (*real_##name)(__VA_ARGS__); \
	if (!real_##name) real_##name = dlsym(RTLD_NEXT, #name)

int socket(int domain, int type, int protocol)
{
	REAL(socket, int, int, int, int);
	if (domain != AF_NETLINK || protocol != NETLINK_GENERIC)
		return real_socket(domain, type, protocol);
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int i = 0; i < MAX_FDS; i++) {
		if (queues[i].fd <= 0) {
			memset(&queues[i], 0, sizeof(queues[i]));
			queues[i].fd = fd;
			return fd;
		}
	}
	close(fd);
	errno = EMFILE;
	return -1;
}

int close(int fd)
{
	REAL(close, int, int);
	struct queue *q = queue_of(fd);
	if (q) {
		for (int i = 0; i < q->count; i++)
			free(q->buf[i]);
		memset(q, 0, sizeof(*q));
	}
	return real_close(fd);
}

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	REAL(bind, int, int, const struct sockaddr *, socklen_t);
	return queue_of(fd) ? 0 : real_bind(fd, addr, len);
}

int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
	REAL(getsockname, int, int, struct sockaddr *, socklen_t *);
	if (!queue_of(fd))
		return real_getsockname(fd, addr, len);
	struct sockaddr_nl nl = {.nl_family = AF_NETLINK, .nl_pid = (uint32_t)getpid()};
	memcpy(addr, &nl, *len < sizeof(nl) ? *len : sizeof(nl));
	*len = sizeof(nl);
	return 0;
}

int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	REAL(setsockopt, int, int, int, int, const void *, socklen_t);
	return queue_of(fd) ? 0 : real_setsockopt(fd, level, name, val, len);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	REAL(sendmsg, ssize_t, int, const struct msghdr *, int);
	struct queue *q = queue_of(fd);
	if (!q)
		return real_sendmsg(fd, msg, flags);
	char buf[16384];
	size_t len = 0;
	for (size_t i = 0; i < msg->msg_iovlen; i++) {
		size_t n = msg->msg_iov[i].iov_len;
		if (len + n > sizeof(buf))
			n = sizeof(buf) - len;
		memcpy(buf + len, msg->msg_iov[i].iov_base, n);
		len += n;
	}
	handle_request(q, buf, len);
	return len;
}

ssize_t sendto(int fd, const void *data, size_t len, int flags, const struct sockaddr *to, socklen_t tolen)
{
	REAL(sendto, ssize_t, int, const void *, size_t, int, const struct sockaddr *, socklen_t);
	struct queue *q = queue_of(fd);
	if (!q)
		return real_sendto(fd, data, len, flags, to, tolen);
	char buf[16384];
	if (len > sizeof(buf))
		len = sizeof(buf);
	memcpy(buf, data, len);
	handle_request(q, buf, len);
	return len;
}

ssize_t send(int fd, const void *data, size_t len, int flags)
{
	return sendto(fd, data, len, flags, NULL, 0);
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	REAL(recvmsg, ssize_t, int, struct msghdr *, int);
	struct queue *q = queue_of(fd);
	if (!q)
		return real_recvmsg(fd, msg, flags);
	if (!q->count) {
		errno = EAGAIN;
		return -1;
	}
	size_t len = q->len[0], done = 0;
	for (size_t i = 0; i < msg->msg_iovlen && done < len; i++) {
		size_t n = msg->msg_iov[i].iov_len;
		if (n > len - done)
			n = len - done;
		memcpy(msg->msg_iov[i].iov_base, q->buf[0] + done, n);
		done += n;
	}
	msg->msg_flags = done < len ? MSG_TRUNC : 0;
	if (msg->msg_name && msg->msg_namelen >= sizeof(struct sockaddr_nl)) {
		struct sockaddr_nl nl = {.nl_family = AF_NETLINK};
		memcpy(msg->msg_name, &nl, sizeof(nl));
		msg->msg_namelen = sizeof(nl);
	}
	msg->msg_controllen = 0;
	if (!(flags & MSG_PEEK)) {
		free(q->buf[0]);
		memmove(&q->buf[0], &q->buf[1], sizeof(q->buf[0]) * (q->count - 1));
		memmove(&q->len[0], &q->len[1], sizeof(q->len[0]) * (q->count - 1));
		q->count--;
	}
	return (flags & MSG_TRUNC) ? (ssize_t)len : (ssize_t)done;
}

static FILE *open_conn_file(const char *mode, FILE *(*real)(const char *, const char *))
{
	char path[4096];
	snprintf(path, sizeof(path), "%s.conn", state_path());
	FILE *f = real(path, mode);
	if (f)
		return f;
	f = tmpfile();
	if (f) {
		fputs("Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n", f);
		rewind(f);
	}
	return f;
}

FILE *fopen(const char *path, const char *mode)
{
	REAL(fopen, FILE *, const char *, const char *);
	if (!strcmp(path, "/proc/net/ip_vs_conn"))
		return open_conn_file(mode, real_fopen);
	return real_fopen(path, mode);
}

FILE *fopen64(const char *path, const char *mode)
{
	REAL(fopen64, FILE *, const char *, const char *);
	if (!strcmp(path, "/proc/net/ip_vs_conn"))
		return open_conn_file(mode, real_fopen64);
	return real_fopen64(path, mode);
}
