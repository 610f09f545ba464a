//! Connection synchronisation, the LVS sync daemon's job: a master's workers note new and
//! changed connections (and persistence templates) in a bounded queue each; the control
//! side sends them in IPVS sync messages (version 1, the format `ipvsadm --start-daemon`
//! speaks); a backup's control side decodes them and queues each for the worker that owns
//! its client endpoint, which installs it between bursts. Full queues drop and count,
//! never block a worker.

use crate::conn::Addr16;
use crate::sip::{SipCall, SipCalls, SIP_CALL_SLOTS};
use crossbeam::queue::ArrayQueue;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
// Fields read as 0 past the end (lengths are checked before fields are read); written
// where the message has room (the caller made it).
use rvs_wire::{get_u16 as get16, get_u32 as get32, get_u8 as get8, set_bytes as set};

/// The LVS sync group and port.
pub const GROUP_V4: [u8; 4] = [224, 0, 0, 81];
pub const PORT: u16 = 8848;
/// Message header and the fixed part of an IPv4 / IPv6 connection entry.
pub const HEADER_LEN: usize = 8;
pub const CONN_V4_LEN: usize = 36;
pub const CONN_V6_LEN: usize = 72;
/// The old format (version 0, `net.ipv4.vs.sync_version = 0`): a 4-byte header and IPv4
/// entries of 24 bytes, 48 with the sequence options.
pub const HEADER_V0_LEN: usize = 4;
pub const CONN_V0_LEN: usize = 24;
pub const CONN_V0_SEQ_LEN: usize = 48;
/// Entries a worker's queue holds (each way).
pub const QUEUE_LEN: usize = 8192;

/// IPVS connection flags carried in sync messages.
pub mod ipvs_flags {
    pub const FWD_MASK: u32 = 0x0007;
    pub const MASQ: u32 = 0x0000;
    pub const LOCALNODE: u32 = 0x0001;
    pub const TUNNEL: u32 = 0x0002;
    pub const DROUTE: u32 = 0x0003;
    /// Sent on to its own destination, no server (cache_bypass).
    pub const BYPASS: u32 = 0x0004;
    pub const SYNC: u32 = 0x0020;
    pub const INACTIVE: u32 = 0x0100;
    pub const TEMPLATE: u32 = 0x1000;
    pub const ONE_PACKET: u32 = 0x2000;
    /// In and out sequence adjustments (a version-0 entry then carries them).
    pub const SEQ_MASK: u32 = 0x0600;
    /// An entry expecting a connection from a client port not known yet (an FTP helper's
    /// passive data connection).
    pub const NO_CPORT: u32 = 0x0800;
    /// The server's sequence numbers are shifted (an application helper rewrote its data).
    pub const OUT_SEQ: u32 = 0x0200;
}

/// IPVS's option carrying an entry's sequence adjustments (in, then out).
pub const OPT_SEQ_DATA: u8 = 1;
/// Its data: two adjustments of three 32-bit words.
const SEQ_DATA_LEN: usize = 24;
/// IPVS's options carrying a template's persistence-engine data (SIP: the Call-ID) and
/// the engine's name (at most 16 bytes), and the flag of an option a backup may skip.
pub const OPT_PE_DATA: u8 = 2;
pub const OPT_PE_NAME: u8 = 3;
const PE_NAME_MAX: usize = 16;
pub const OPT_F_PARAM: u8 = 0x40;

/// A sequence adjustment as IPVS keeps it (`struct ip_vs_seq`): segments after `init_seq`
/// are shifted by `delta`, those at or before it by `previous_delta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncSeq {
    pub init_seq: u32,
    pub delta: u32,
    pub previous_delta: u32,
}

impl SyncSeq {
    fn put(&self, out: &mut Vec<u8>) {
        for v in [self.init_seq, self.delta, self.previous_delta] {
            put32(out, v);
        }
    }

    fn at(b: &[u8], at: usize) -> SyncSeq {
        SyncSeq {
            init_seq: get32(b, at),
            delta: get32(b, at + 4),
            previous_delta: get32(b, at + 8),
        }
    }
}

/// One connection (or template) as a sync message carries it. Addresses are 16 bytes,
/// IPv4 mapped, as in the connection table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncConn {
    pub proto: u8,
    pub v6: bool,
    pub flags: u32,
    /// IPVS's state number for the protocol (TCP's as [`crate::conn::TcpState`], SCTP's as
    /// [`crate::conn::SctpState`]).
    pub state: u16,
    pub cport: u16,
    pub vport: u16,
    pub dport: u16,
    pub fwmark: u32,
    /// Seconds; 0 (a version-0 entry): the state's own timeout.
    pub timeout: u32,
    pub caddr: Addr16,
    pub vaddr: Addr16,
    pub daddr: Addr16,
    /// A full-NAT or SNAT entry's local end, carried in rvs's own option.
    pub local: Option<SyncLocal>,
    /// The server's sequence shift (FTP's rewritten replies), in IPVS's sequence option
    /// with the `OUT_SEQ` flag.
    pub out_seq: Option<SyncSeq>,
}

/// rvs's option after an entry's fixed part: a full-NAT (or SNAT) entry's local end and its
/// PROXY protocol state. Its type has IPVS's optional-parameter flag (0x40) set, so a
/// kernel backup skips it and takes the entry as it would without it.
pub const OPT_LOCAL_END: u8 = OPT_F_PARAM | 0x1f;
const LOCAL_END_TYPE: u8 = OPT_LOCAL_END & !OPT_F_PARAM;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncLocal {
    pub addr: Addr16,
    pub port: u16,
    /// An SNAT entry (no service: the "server" is the flow's own destination).
    pub snat: bool,
    pub proxy: u8,
    pub proxy_seq: u32,
}

impl SyncLocal {
    /// Option data length: address, port, kind, PROXY state and sequence number.
    fn data_len(v6: bool) -> usize {
        if v6 {
            16 + 8
        } else {
            4 + 8
        }
    }
}

/// Why a message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncError {
    Truncated,
    /// Sizes that do not add up.
    Malformed,
}

fn put16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_be_bytes());
}

fn put32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_be_bytes());
}

fn addr_at(b: &[u8], at: usize, v6: bool) -> Addr16 {
    let mut a = [0u8; 16];
    if v6 {
        if let Some(s) = b.get(at..at + 16) {
            a.copy_from_slice(s);
        }
    } else if let Some(s) = b.get(at..at + 4) {
        a[10] = 0xff;
        a[11] = 0xff;
        a[12..].copy_from_slice(s);
    }
    a
}

impl SyncConn {
    pub fn wire_len(&self) -> usize {
        let fixed = if self.v6 { CONN_V6_LEN } else { CONN_V4_LEN };
        fixed
            + self.out_seq.map_or(0, |_| 2 + SEQ_DATA_LEN)
            + self.local.map_or(0, |_| 2 + SyncLocal::data_len(self.v6))
    }

    /// The entry's size with `pe`'s persistence-engine options.
    fn entry_len(&self, pe: Option<&SipCall>) -> usize {
        self.wire_len() + pe.map_or(0, |k| 2 + k.call_id().len() + 2 + PE_SIP.len())
    }

    /// The flags as sent: `OUT_SEQ` with a sequence shift.
    fn wire_flags(&self) -> u32 {
        match self.out_seq {
            Some(_) => self.flags | ipvs_flags::OUT_SEQ,
            None => self.flags & !ipvs_flags::SEQ_MASK,
        }
    }

    /// Writes the entry (version 1), with `pe`'s options after the sequence option as the
    /// kernel's master writes them: its data, then its name.
    fn emit(&self, out: &mut Vec<u8>, pe: Option<&SipCall>) {
        out.push(if self.v6 { 1 } else { 0 });
        out.push(self.proto);
        // Version 0 of the entry in the top 4 bits, its size below.
        put16(out, self.entry_len(pe) as u16 & 0x0fff);
        put32(out, self.wire_flags());
        put16(out, self.state);
        put16(out, self.cport);
        put16(out, self.vport);
        put16(out, self.dport);
        put32(out, self.fwmark);
        put32(out, self.timeout);
        let addr = |out: &mut Vec<u8>, a: &Addr16| {
            if self.v6 {
                out.extend_from_slice(a);
            } else {
                out.extend_from_slice(a.get(12..).unwrap_or(&[0; 4]));
            }
        };
        for a in [&self.caddr, &self.vaddr, &self.daddr] {
            addr(out, a);
        }
        if let Some(seq) = &self.out_seq {
            out.push(OPT_SEQ_DATA);
            out.push(SEQ_DATA_LEN as u8);
            SyncSeq::default().put(out);
            seq.put(out);
        }
        if let Some(k) = pe {
            out.push(OPT_PE_DATA);
            out.push(k.call_id().len() as u8);
            out.extend_from_slice(k.call_id());
            out.push(OPT_PE_NAME);
            out.push(PE_SIP.len() as u8);
            out.extend_from_slice(PE_SIP);
        }
        if let Some(l) = &self.local {
            out.push(OPT_LOCAL_END);
            out.push(SyncLocal::data_len(self.v6) as u8);
            addr(out, &l.addr);
            put16(out, l.port);
            out.push(u8::from(l.snat));
            out.push(l.proxy);
            put32(out, l.proxy_seq);
        }
    }
}

/// The persistence engine's name in sync messages.
const PE_SIP: &[u8] = b"sip";

/// A SIP template's call, when `calls` holds it.
fn sip_call_of(c: &SyncConn, calls: &SipCalls) -> Option<SipCall> {
    let sip_template =
        c.flags & ipvs_flags::TEMPLATE != 0 && c.caddr[0] == crate::sip::TEMPLATE_MARK;
    sip_template.then(|| calls.find(&c.caddr)).flatten()
}

/// The zero bytes before a version-1 entry that would start `offset` bytes into its
/// message: as the kernel's sender, each entry starts on a 32-bit boundary (an entry with
/// the sequence option is 62 bytes), and its receiver steps over the entry's size rounded
/// up to 4. (The size field counts the entry alone.)
fn entry_padding(offset: usize) -> usize {
    offset.wrapping_neg() & 3
}

/// Packs connections into version-1 messages of at most `max_len` bytes (and 255 entries),
/// each entry 32-bit aligned.
pub fn encode(syncid: u8, conns: &[SyncConn], max_len: usize) -> Vec<Vec<u8>> {
    encode_with(syncid, conns, max_len, None)
}

/// [`encode`]; a SIP template whose call `calls` holds goes as the kernel's master sends
/// one: its client's address, and the Call-ID and the engine's name in the
/// persistence-engine options (without it, under its key, which only an rvs backup reads).
pub fn encode_with(
    syncid: u8,
    conns: &[SyncConn],
    max_len: usize,
    calls: Option<&SipCalls>,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut msg: Vec<u8> = Vec::new();
    let mut count = 0u8;
    let finish = |msg: &mut Vec<u8>, count: u8, out: &mut Vec<Vec<u8>>| {
        if count > 0 {
            let size = msg.len() as u16;
            set(msg, 2, &size.to_be_bytes());
            set(msg, 4, &[count]);
            out.push(std::mem::take(msg));
        }
    };
    for c in conns {
        let pe = calls.and_then(|k| sip_call_of(c, k));
        let wire = match &pe {
            Some(k) => SyncConn {
                v6: crate::conn::mapped_v4(&k.client).is_none(),
                caddr: k.client,
                ..*c
            },
            None => *c,
        };
        let c = &wire;
        let pad = entry_padding(msg.len());
        if count == 255 || (count > 0 && msg.len() + pad + c.entry_len(pe.as_ref()) > max_len) {
            finish(&mut msg, count, &mut out);
            count = 0;
        }
        if count == 0 {
            msg.clear();
            // reserved 0, syncid, size, count, version 1, spare.
            msg.extend_from_slice(&[0, syncid, 0, 0, 0, 1, 0, 0]);
        } else {
            msg.resize(msg.len() + pad, 0);
        }
        c.emit(&mut msg, pe.as_ref());
        count += 1;
    }
    finish(&mut msg, count, &mut out);
    out
}

/// Packs connections into version-0 messages (`net.ipv4.vs.sync_version = 0`, what kernels
/// before 2.6.39 read) of at most `max_len` bytes (and 255 entries): IPv4 entries only,
/// with 16-bit flags and no timeout (the backup gives each its state's); one-packet
/// entries and full-NAT ends, which the format cannot carry, are left out, as the
/// kernel's version-0 master leaves out what it cannot send.
pub fn encode_v0(syncid: u8, conns: &[SyncConn], max_len: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut msg: Vec<u8> = Vec::new();
    let sendable = conns
        .iter()
        .filter(|c| !c.v6 && c.local.is_none() && c.flags & ipvs_flags::ONE_PACKET == 0);
    for c in sendable {
        let len = if c.out_seq.is_some() {
            CONN_V0_SEQ_LEN
        } else {
            CONN_V0_LEN
        };
        if msg.len() >= HEADER_V0_LEN && (get8(&msg, 0) == 255 || msg.len() + len > max_len) {
            out.push(std::mem::take(&mut msg));
        }
        if msg.is_empty() {
            // count, syncid, size.
            msg.extend_from_slice(&[0, syncid, 0, 0]);
        }
        msg.push(0);
        msg.push(c.proto);
        put16(&mut msg, c.cport);
        put16(&mut msg, c.vport);
        put16(&mut msg, c.dport);
        for a in [&c.caddr, &c.vaddr, &c.daddr] {
            msg.extend_from_slice(a.get(12..).unwrap_or(&[0; 4]));
        }
        put16(&mut msg, c.wire_flags() as u16);
        put16(&mut msg, c.state);
        // The sequence adjustments follow the entry when the flags say so.
        if let Some(seq) = &c.out_seq {
            SyncSeq::default().put(&mut msg);
            seq.put(&mut msg);
        }
        let (count, size) = (get8(&msg, 0) + 1, msg.len() as u16);
        set(&mut msg, 0, &[count]);
        set(&mut msg, 2, &size.to_be_bytes());
    }
    if msg.len() > HEADER_V0_LEN {
        out.push(msg);
    }
    out
}

/// A message's sync id and entries (a SIP template's Call-ID read into its key; entries
/// the kernel's backup would leave out are left out).
/// As the kernel tells them apart: version 1 has a zero first byte, version 1 and zero
/// spare bytes in its header; anything else is the old format.
pub fn decode(msg: &[u8]) -> Result<(u8, Vec<SyncConn>), SyncError> {
    decode_counting(msg).map(|(syncid, conns, _)| (syncid, conns))
}

/// [`decode`], and how many entries were left out.
pub fn decode_counting(msg: &[u8]) -> Result<(u8, Vec<SyncConn>, usize), SyncError> {
    decode_keeping(msg, None)
}

/// [`decode_counting`]; the calls of SIP templates a kernel master sent go in `calls`
/// under the templates' keys, as this box's own templates' do.
pub fn decode_keeping(
    msg: &[u8],
    calls: Option<&SipCalls>,
) -> Result<(u8, Vec<SyncConn>, usize), SyncError> {
    if msg.len() < HEADER_V0_LEN {
        return Err(SyncError::Truncated);
    }
    if usize::from(get16(msg, 2)) != msg.len() {
        return Err(SyncError::Malformed);
    }
    let v1 =
        msg.len() >= HEADER_LEN && get8(msg, 0) == 0 && get8(msg, 5) == 1 && get16(msg, 6) == 0;
    if !v1 {
        return decode_v0(msg).map(|(syncid, conns)| (syncid, conns, 0));
    }
    let (syncid, count) = (get8(msg, 1), get8(msg, 4));
    let mut conns = Vec::with_capacity(usize::from(count));
    let mut skipped = 0;
    let mut at = HEADER_LEN;
    for _ in 0..count {
        let kind = *msg.get(at).ok_or(SyncError::Truncated)?;
        let v6 = kind & 0x01 != 0;
        let len = usize::from(get16(msg, at + 2) & 0x0fff);
        let fixed = if v6 { CONN_V6_LEN } else { CONN_V4_LEN };
        if len < fixed || at + len > msg.len() || get16(msg, at + 2) >> 12 != 0 {
            return Err(SyncError::Malformed);
        }
        let alen = if v6 { 16 } else { 4 };
        let addrs = at + 24;
        // Options: the sequence shift, the persistence engine's data and name, rvs's local
        // end; other optional ones skipped. As the kernel's backup, an unknown mandatory
        // option or persistence engine leaves the entry out.
        let mut local = None;
        let mut out_seq = None;
        let (mut pe_data, mut pe_name): (Option<&[u8]>, Option<&[u8]>) = (None, None);
        let mut left_out = false;
        let flags = get32(msg, at + 4);
        let mut o = at + fixed;
        while o < at + len {
            let (kind, olen) = (
                get8(msg, o),
                usize::from(*msg.get(o + 1).ok_or(SyncError::Truncated)?),
            );
            let data = o + 2;
            if olen == 0 || data + olen > at + len {
                return Err(SyncError::Malformed);
            }
            let bytes = msg.get(data..data + olen).ok_or(SyncError::Malformed)?;
            // As the kernel, by type without the optional flag.
            let optional = kind & OPT_F_PARAM != 0;
            match kind & !OPT_F_PARAM {
                OPT_SEQ_DATA => {
                    if olen == SEQ_DATA_LEN && flags & ipvs_flags::OUT_SEQ != 0 {
                        out_seq = Some(SyncSeq::at(msg, data + 12));
                    }
                }
                OPT_PE_DATA if pe_data.is_none() => pe_data = Some(bytes),
                OPT_PE_NAME if pe_name.is_none() && olen <= PE_NAME_MAX => pe_name = Some(bytes),
                OPT_PE_DATA | OPT_PE_NAME => return Err(SyncError::Malformed),
                LOCAL_END_TYPE if optional => {
                    if olen == SyncLocal::data_len(v6) {
                        let p = data + alen;
                        local = Some(SyncLocal {
                            addr: addr_at(msg, data, v6),
                            port: get16(msg, p),
                            snat: get8(msg, p + 2) & 1 != 0,
                            proxy: get8(msg, p + 3),
                            proxy_seq: get32(msg, p + 4),
                        });
                    }
                }
                _ => left_out |= !optional,
            }
            o = data + olen;
        }
        let mut caddr = addr_at(msg, addrs, v6);
        // A SIP template's key is no address: such an entry is noted as an IPv6 one.
        let mut keyed = false;
        if let Some(call_id) = pe_data {
            // SIP's Call-ID (the one engine there is): a template's key, as rvs keeps it.
            left_out |= pe_name != Some(PE_SIP);
            if flags & ipvs_flags::TEMPLATE != 0 {
                let call = SipCall::new(caddr, call_id);
                caddr = crate::sip::template_addr(call_id, &caddr);
                keyed = true;
                if let (Some(calls), Some(call), false) = (calls, call, left_out) {
                    calls.keep(&caddr, &call);
                }
            }
        }
        // The next entry starts on a 32-bit boundary.
        let next = at + len + entry_padding(len);
        if left_out {
            skipped += 1;
            at = next;
            continue;
        }
        conns.push(SyncConn {
            proto: get8(msg, at + 1),
            v6: v6 || keyed,
            flags: flags & !ipvs_flags::SEQ_MASK,
            state: get16(msg, at + 8),
            cport: get16(msg, at + 10),
            vport: get16(msg, at + 12),
            dport: get16(msg, at + 14),
            fwmark: get32(msg, at + 16),
            timeout: get32(msg, at + 20),
            caddr,
            vaddr: addr_at(msg, addrs + alen, v6),
            daddr: addr_at(msg, addrs + 2 * alen, v6),
            local,
            out_seq,
        });
        at = next;
    }
    Ok((syncid, conns, skipped))
}

/// A version-0 message (an old kernel's, or one set to `sync_version = 0`): IPv4 entries
/// with 16-bit flags and no timeout, firewall mark or options but the sequence ones
/// (skipped).
fn decode_v0(msg: &[u8]) -> Result<(u8, Vec<SyncConn>), SyncError> {
    let (count, syncid) = (get8(msg, 0), get8(msg, 1));
    let mut conns = Vec::with_capacity(usize::from(count));
    let mut at = HEADER_V0_LEN;
    for _ in 0..count {
        let flags = u32::from(get16(msg, at + 20));
        let len = if flags & ipvs_flags::SEQ_MASK != 0 {
            CONN_V0_SEQ_LEN
        } else {
            CONN_V0_LEN
        };
        if at + len > msg.len() {
            return Err(SyncError::Truncated);
        }
        conns.push(SyncConn {
            proto: get8(msg, at + 1),
            v6: false,
            flags: flags & !ipvs_flags::SEQ_MASK,
            state: get16(msg, at + 22),
            cport: get16(msg, at + 2),
            vport: get16(msg, at + 4),
            dport: get16(msg, at + 6),
            fwmark: 0,
            timeout: 0,
            caddr: addr_at(msg, at + 8, false),
            vaddr: addr_at(msg, at + 12, false),
            daddr: addr_at(msg, at + 16, false),
            local: None,
            out_seq: (flags & ipvs_flags::OUT_SEQ != 0).then(|| SyncSeq::at(msg, at + 24 + 12)),
        });
        at += len;
    }
    Ok((syncid, conns))
}

/// What a worker and the sync daemon share: the worker's notes for a master to send, the
/// connections a backup received for this worker, and the counters of both.
#[derive(Debug)]
pub struct SyncChannel {
    pub outbox: ArrayQueue<SyncConn>,
    pub inbox: ArrayQueue<SyncConn>,
    /// Set while this box runs a master sync daemon: only then do workers note changes.
    pub sending: AtomicBool,
    /// Notes lost to a full outbox.
    pub out_dropped: AtomicU64,
    /// Received entries installed, and those refused (no such service or server, table
    /// full).
    pub installed: AtomicU64,
    pub refused: AtomicU64,
    /// SIP templates' calls, shared by all workers' channels (the sync daemon sends a
    /// template's call with it, as the kernel's master does).
    pub sip_calls: Arc<SipCalls>,
}

impl Default for SyncChannel {
    fn default() -> Self {
        SyncChannel::sharing(Arc::new(SipCalls::new(SIP_CALL_SLOTS)))
    }
}

impl SyncChannel {
    /// A worker's channel whose SIP calls go in `sip_calls` (the appliance's one store).
    pub fn sharing(sip_calls: Arc<SipCalls>) -> SyncChannel {
        SyncChannel {
            outbox: ArrayQueue::new(QUEUE_LEN),
            inbox: ArrayQueue::new(QUEUE_LEN),
            sending: AtomicBool::new(false),
            out_dropped: AtomicU64::new(0),
            installed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            sip_calls,
        }
    }
}

impl SyncChannel {
    /// Worker side: notes a change (when a master daemon runs); never blocks.
    #[inline]
    pub fn note(&self, c: SyncConn) {
        if self.outbox.push(c).is_err() {
            self.out_dropped.fetch_add(1, Relaxed);
        }
    }

    #[inline]
    pub fn is_sending(&self) -> bool {
        self.sending.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> Addr16 {
        let mut x = [0u8; 16];
        x[10] = 0xff;
        x[11] = 0xff;
        x[12..].copy_from_slice(&a);
        x
    }

    /// The bytes of one IPv4 entry as the kernel's struct ip_vs_sync_v4 lays them out.
    #[test]
    fn the_v1_layout_byte_for_byte() {
        let c = SyncConn {
            proto: 6,
            v6: false,
            flags: ipvs_flags::DROUTE,
            state: 1,
            cport: 40000,
            vport: 80,
            dport: 80,
            fwmark: 0,
            timeout: 900,
            caddr: v4([10, 0, 0, 10]),
            vaddr: v4([10, 0, 0, 100]),
            daddr: v4([10, 0, 0, 11]),
            local: None,
            out_seq: None,
        };
        let msgs = encode(7, &[c], 1472);
        assert_eq!(msgs.len(), 1);
        let m = &msgs[0];
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            0, 7, 0, 44, 1, 1, 0, 0,              // header: syncid 7, 44 bytes, 1 entry, v1
            0, 6, 0, 36,                          // IPv4, TCP, entry version 0 size 36
            0, 0, 0, 3,                           // flags: DROUTE
            0, 1,                                 // state ESTABLISHED
            0x9c, 0x40, 0, 80, 0, 80,             // cport 40000, vport, dport
            0, 0, 0, 0,                           // fwmark
            0, 0, 3, 0x84,                        // timeout 900
            10, 0, 0, 10, 10, 0, 0, 100, 10, 0, 0, 11,
        ];
        assert_eq!(m, &want);
        assert_eq!(decode(m).unwrap(), (7, vec![c]));
    }

    /// A version-0 message as the kernel's ip_vs_sync_mesg_v0 and ip_vs_sync_conn_v0 lay
    /// it out: a NAT connection, one with sequence options (48 bytes: its out adjustment
    /// read), a DR template; no timeout (the backup takes the state's).
    #[test]
    fn the_old_format_is_read() {
        #[rustfmt::skip]
        let msg: Vec<u8> = vec![
            3, 9, 0, 100,                         // 3 entries, syncid 9, 100 bytes
            0, 6, 0x9c, 0x40, 0, 80, 0x1f, 0x90,  // TCP, cport 40000, vport 80, dport 8080
            10, 0, 0, 10, 10, 0, 0, 100, 10, 0, 0, 11,
            0, 0, 0, 1,                           // MASQ, ESTABLISHED
            0, 17, 0x13, 0x88, 0, 53, 0, 53,      // UDP 5000 -> 53
            10, 0, 0, 12, 10, 0, 0, 100, 10, 0, 0, 13,
            0x06, 0x00, 0, 0,                     // sequence options follow
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
            0, 6, 0, 0, 0, 80, 0, 80,             // a template: no client port
            10, 0, 0, 0, 10, 0, 0, 100, 10, 0, 0, 11,
            0x10, 0x03, 0, 0,                     // TEMPLATE | DROUTE
        ];
        let (syncid, conns) = decode(&msg).unwrap();
        assert_eq!(syncid, 9);
        let nat = SyncConn {
            proto: 6,
            state: 1,
            cport: 40000,
            vport: 80,
            dport: 8080,
            caddr: v4([10, 0, 0, 10]),
            vaddr: v4([10, 0, 0, 100]),
            daddr: v4([10, 0, 0, 11]),
            ..SyncConn::default()
        };
        let udp = SyncConn {
            proto: 17,
            cport: 5000,
            vport: 53,
            dport: 53,
            state: 0,
            caddr: v4([10, 0, 0, 12]),
            daddr: v4([10, 0, 0, 13]),
            out_seq: Some(SyncSeq {
                init_seq: 0x0d0e_0f10,
                delta: 0x1112_1314,
                previous_delta: 0x1516_1718,
            }),
            ..nat
        };
        let template = SyncConn {
            flags: ipvs_flags::TEMPLATE | ipvs_flags::DROUTE,
            state: 0,
            cport: 0,
            dport: 80,
            caddr: v4([10, 0, 0, 0]),
            ..nat
        };
        assert_eq!(conns, vec![nat, udp, template]);
        assert_eq!(decode(&msg[..99]), Err(SyncError::Malformed), "size");
        let mut short = msg[..76].to_vec();
        short[3] = 76;
        assert_eq!(decode(&short), Err(SyncError::Truncated), "options cut");
    }

    /// A version-0 master's messages: the kernel's layout byte for byte (the NAT entry of
    /// the message above), read back as sent; IPv6, one-packet and full-NAT entries left
    /// out; split at 255 entries and at the size.
    #[test]
    fn the_old_format_is_written() {
        let nat = SyncConn {
            proto: 6,
            state: 1,
            cport: 40000,
            vport: 80,
            dport: 8080,
            timeout: 900,
            caddr: v4([10, 0, 0, 10]),
            vaddr: v4([10, 0, 0, 100]),
            daddr: v4([10, 0, 0, 11]),
            ..SyncConn::default()
        };
        let v6 = SyncConn { v6: true, ..nat };
        let one = SyncConn {
            flags: ipvs_flags::ONE_PACKET,
            ..nat
        };
        let fnat = SyncConn {
            local: Some(SyncLocal::default()),
            ..nat
        };
        let msgs = encode_v0(9, &[v6, nat, one, fnat], 1472);
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            1, 9, 0, 28,
            0, 6, 0x9c, 0x40, 0, 80, 0x1f, 0x90,
            10, 0, 0, 10, 10, 0, 0, 100, 10, 0, 0, 11,
            0, 0, 0, 1,
        ];
        assert_eq!(msgs, vec![want]);
        let (syncid, back) = decode(&msgs[0]).unwrap();
        assert_eq!((syncid, back), (9, vec![SyncConn { timeout: 0, ..nat }]));
        let many: Vec<SyncConn> = (0..600u16).map(|i| SyncConn { cport: i, ..nat }).collect();
        let msgs = encode_v0(1, &many, 1472);
        assert_eq!(
            msgs.iter().map(|m| m[0]).collect::<Vec<_>>(),
            vec![61, 61, 61, 61, 61, 61, 61, 61, 61, 51]
        );
        let msgs = encode_v0(1, &many, 65535);
        assert_eq!(
            msgs.iter().map(|m| m[0]).collect::<Vec<_>>(),
            vec![255, 255, 90]
        );
        let back: Vec<SyncConn> = msgs.iter().flat_map(|m| decode(m).unwrap().1).collect();
        assert_eq!(back.len(), 600);
        assert!(encode_v0(1, &[v6], 1472).is_empty());
    }

    #[test]
    fn messages_split_by_size_and_count_and_bad_ones_are_refused() {
        let mut c = SyncConn {
            proto: 17,
            caddr: v4([192, 0, 2, 1]),
            vaddr: v4([192, 0, 2, 2]),
            daddr: v4([192, 0, 2, 3]),
            ..SyncConn::default()
        };
        let many: Vec<SyncConn> = (0..600u16)
            .map(|i| {
                c.cport = i;
                c
            })
            .collect();
        let msgs = encode(1, &many, 1472);
        // 40 entries of 36 bytes fit in 1472 with the header.
        assert_eq!(msgs[0].len(), HEADER_LEN + 40 * CONN_V4_LEN);
        let back: Vec<SyncConn> = msgs.iter().flat_map(|m| decode(m).unwrap().1).collect();
        assert_eq!(back, many);
        let big = encode(1, &many, 65_000);
        assert_eq!(big.len(), 3, "255 entries at most per message");
        let mut v6 = c;
        v6.v6 = true;
        v6.caddr = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let m = encode(1, &[v6, c], 1472);
        assert_eq!(m[0].len(), HEADER_LEN + CONN_V6_LEN + CONN_V4_LEN);
        assert_eq!(decode(&m[0]).unwrap().1, vec![v6, c]);
        let good = &m[0];
        assert_eq!(decode(&good[..3]), Err(SyncError::Truncated));
        assert_eq!(decode(&good[..5]), Err(SyncError::Malformed), "its size");
        // Not version 1 in its header: read as the old format, which it does not fit.
        let mut bad = good.clone();
        bad[0] = 200;
        assert_eq!(decode(&bad), Err(SyncError::Truncated));
        let mut bad = good.clone();
        bad[3] += 1;
        assert_eq!(decode(&bad), Err(SyncError::Malformed));
        let mut bad = good.clone();
        bad[HEADER_LEN + 3] = 10;
        assert_eq!(
            decode(&bad),
            Err(SyncError::Malformed),
            "an entry shorter than its fixed part"
        );
        let mut bad = good.clone();
        bad[4] = 3;
        assert!(decode(&bad).is_err(), "more entries than bytes");
    }

    /// An established FTP control connection whose server's sequence numbers the helper
    /// shifted by 5 after 5001.
    fn ftp_control() -> SyncConn {
        SyncConn {
            proto: 6,
            state: 1,
            cport: 40000,
            vport: 21,
            dport: 21,
            timeout: 900,
            caddr: v4([198, 51, 100, 7]),
            vaddr: v4([192, 168, 1, 110]),
            daddr: v4([10, 0, 0, 2]),
            out_seq: Some(SyncSeq {
                init_seq: 5001,
                delta: 5,
                previous_delta: 0,
            }),
            ..SyncConn::default()
        }
    }

    /// An FTP control connection's sequence shift travels in IPVS's sequence option (type
    /// 1, the in adjustment then the out one, with the OUT_SEQ flag), in version 1 after
    /// the fixed part and in version 0 as the 24 bytes after a 48-byte entry.
    #[test]
    fn the_sequence_shift_travels_as_the_kernel_sends_it() {
        let c = ftp_control();
        let m = &encode(7, &[c], 1472)[0];
        assert_eq!(m.len(), 8 + 36 + 26);
        assert_eq!(get16(m, 10), 62, "the entry's size counts the option");
        assert_eq!(get32(m, 12), ipvs_flags::OUT_SEQ, "MASQ with OUT_SEQ");
        #[rustfmt::skip]
        let option: Vec<u8> = vec![
            1, 24,                                    // IPVS_OPT_SEQ_DATA
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,       // in_seq: none
            0, 0, 0x13, 0x89, 0, 0, 0, 5, 0, 0, 0, 0, // out_seq: 5001, +5, +0
        ];
        assert_eq!(&m[44..], &option[..]);
        assert_eq!(decode(m).unwrap().1, vec![c]);
        // The kernel takes the option by its type without the optional flag.
        let mut flagged = m.clone();
        flagged[44] |= OPT_F_PARAM;
        assert_eq!(decode(&flagged).unwrap().1, vec![c]);
        let m = &encode_v0(7, &[c], 1472)[0];
        assert_eq!(m.len(), 4 + CONN_V0_SEQ_LEN);
        assert_eq!(&m[4 + 24..], &option[2..]);
        assert_eq!(decode(m).unwrap().1, vec![SyncConn { timeout: 0, ..c }]);
        // Without a shift: no option, no flag.
        let plain = SyncConn { out_seq: None, ..c };
        let m = &encode(7, &[plain], 1472)[0];
        assert_eq!((m.len(), get32(m, 12)), (8 + 36, 0));
    }

    /// Entries start on 32-bit boundaries, as the kernel writes and reads them: after a
    /// 62-byte FTP entry (the sequence option) two zero bytes, not counted in its size,
    /// then the next entry; a kernel master's message so padded is read whole.
    #[test]
    fn entries_are_aligned_as_the_kernel_sends_and_reads_them() {
        let ftp = ftp_control();
        let plain = SyncConn {
            out_seq: None,
            cport: 40001,
            ..ftp
        };
        // The kernel's bytes: the header, the FTP entry, its padding, the plain entry.
        #[rustfmt::skip]
        let mut kernel: Vec<u8> = vec![
            0, 9, 0, 108, 2, 1, 0, 0,                 // syncid 9, 108 bytes, 2 entries
            0, 6, 0, 62, 0, 0, 2, 0, 0, 1,            // IPv4 TCP, size 62, OUT_SEQ, ESTABLISHED
            0x9c, 0x40, 0, 21, 0, 21, 0, 0, 0, 0, 0, 0, 3, 0x84,
            198, 51, 100, 7, 192, 168, 1, 110, 10, 0, 0, 2,
            1, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0x13, 0x89, 0, 0, 0, 5, 0, 0, 0, 0,
            0, 0,                                     // padding to 32 bits
            0, 6, 0, 36, 0, 0, 0, 0, 0, 1,            // size 36, MASQ
            0x9c, 0x41, 0, 21, 0, 21, 0, 0, 0, 0, 0, 0, 3, 0x84,
            198, 51, 100, 7, 192, 168, 1, 110, 10, 0, 0, 2,
        ];
        assert_eq!(kernel.len(), 108);
        assert_eq!(decode(&kernel).unwrap(), (9, vec![ftp, plain]));
        assert_eq!(encode(9, &[ftp, plain], 1472), vec![kernel.clone()]);
        // A full-NAT entry (50 bytes) is padded the same way; the last entry is not.
        let fnat = SyncConn {
            local: Some(SyncLocal {
                addr: v4([10, 0, 0, 1]),
                port: 40_002,
                ..SyncLocal::default()
            }),
            ..plain
        };
        let m = &encode(9, &[plain, fnat, plain, fnat], 1472)[0];
        assert_eq!(m.len(), 8 + 36 + 52 + 36 + 50);
        assert_eq!(&m[8 + 36 + 50..8 + 36 + 52], &[0, 0]);
        assert_eq!(get16(m, 8 + 36 + 52 + 2), 36, "the third entry's size");
        assert_eq!(decode(m).unwrap().1, vec![plain, fnat, plain, fnat]);
        // A message cut inside the padding's next entry is refused.
        kernel.truncate(8 + 64 + 10);
        kernel[2..4].copy_from_slice(&82u16.to_be_bytes());
        assert!(decode(&kernel).is_err());
    }

    /// A kernel master's SIP template (`--pe sip`): the Call-ID in the persistence-engine
    /// data option, "sip" in the name option, the client's masked address as caddr. Read
    /// into the key rvs gives the same call from the same client; an entry naming an
    /// engine there is none of, or carrying an unknown mandatory option, is left out and
    /// the rest read, as the kernel's backup does.
    #[test]
    fn a_kernel_masters_sip_template_is_keyed_by_its_call_id() {
        #[rustfmt::skip]
        let entry = |name: &[u8], extra: &[u8]| -> Vec<u8> {
            let mut e: Vec<u8> = vec![
                0, 17, 0, 0, 0, 0, 0x10, 0, 0, 0,     // IPv4 UDP, size below, TEMPLATE|MASQ
                0, 0, 0x13, 0xc4, 0x13, 0xc4,         // cport 0, vport 5060, dport 5060
                0, 0, 0, 0, 0, 0, 1, 0x68,            // fwmark 0, timeout 360
                198, 51, 100, 1, 192, 168, 1, 107, 10, 0, 0, 3,
                2, 8,                                 // IPVS_OPT_PE_DATA
            ];
            e.extend_from_slice(b"abc@host");
            e.extend_from_slice(&[3, name.len() as u8]); // IPVS_OPT_PE_NAME
            e.extend_from_slice(name);
            e.extend_from_slice(extra);
            let size = e.len() as u16;
            e[2..4].copy_from_slice(&size.to_be_bytes());
            e
        };
        let mut msg = vec![0, 1, 0, 0, 3, 1, 0, 0];
        for e in [
            entry(b"sip", &[]),
            entry(b"xyz", &[]),
            entry(b"sip", &[9, 2, 0, 0]),
        ] {
            msg.resize(msg.len() + entry_padding(msg.len()), 0);
            msg.extend(e);
        }
        let size = msg.len() as u16;
        msg[2..4].copy_from_slice(&size.to_be_bytes());
        let (_, conns, left_out) = decode_counting(&msg).unwrap();
        assert_eq!((conns.len(), left_out), (1, 2), "{conns:?}");
        let t = conns[0];
        assert_eq!(
            t.caddr,
            crate::sip::template_addr(b"abc@host", &v4([198, 51, 100, 1]))
        );
        assert_eq!(
            (t.vaddr, t.daddr),
            (v4([192, 168, 1, 107]), v4([10, 0, 0, 3]))
        );
        assert_eq!((t.proto, t.vport, t.timeout), (17, 5060, 360));
        // Its call kept by its key; sent on as the kernel sent it, byte for byte.
        let calls = SipCalls::new(16);
        decode_keeping(&msg, Some(&calls)).unwrap();
        let call = calls.find(&t.caddr).unwrap();
        assert_eq!(
            (call.client, call.call_id()),
            (v4([198, 51, 100, 1]), &b"abc@host"[..])
        );
        let mut kernels = vec![0, 1, 0, 0, 1, 1, 0, 0];
        kernels.extend(entry(b"sip", &[]));
        let size = kernels.len() as u16;
        kernels[2..4].copy_from_slice(&size.to_be_bytes());
        assert_eq!(encode_with(1, &[t], 1472, Some(&calls)), vec![kernels]);
        // Without its call: under its key, an IPv6 entry only rvs reads.
        let m = &encode_with(1, &[t], 1472, Some(&SipCalls::new(16)))[0];
        assert_eq!((m[8], get16(m, 10)), (1, 72));
        assert_eq!(decode(m).unwrap().1, vec![t]);
        // The name given twice spoils the message, as the kernel's backup drops it.
        let mut twice = vec![0, 1, 0, 0, 1, 1, 0, 0];
        twice.extend(entry(b"sip", &[3, 3, b's', b'i', b'p']));
        let size = twice.len() as u16;
        twice[2..4].copy_from_slice(&size.to_be_bytes());
        assert_eq!(decode(&twice), Err(SyncError::Malformed));
    }

    /// A full-NAT entry carries its local end in rvs's optional option (type 0x5f, the
    /// kernel's optional flag set); other options are skipped; a bad option length is
    /// refused.
    #[test]
    fn the_local_end_travels_in_an_optional_option() {
        let mut c = SyncConn {
            proto: 6,
            caddr: v4([192, 0, 2, 1]),
            vaddr: v4([192, 0, 2, 2]),
            daddr: v4([10, 0, 0, 2]),
            local: Some(SyncLocal {
                addr: v4([10, 0, 0, 1]),
                port: 40_001,
                snat: false,
                proxy: 2,
                proxy_seq: 0x0102_0304,
            }),
            ..SyncConn::default()
        };
        let m = &encode(1, &[c], 1472)[0];
        assert_eq!(m.len(), HEADER_LEN + CONN_V4_LEN + 2 + 12);
        let opt = &m[HEADER_LEN + CONN_V4_LEN..];
        assert_eq!(opt, &[0x5f, 12, 10, 0, 0, 1, 0x9c, 0x41, 0, 2, 1, 2, 3, 4]);
        assert_eq!(opt[0] & 0x40, 0x40, "IPVS_OPT_F_PARAM: a kernel skips it");
        assert_eq!(decode(m).unwrap().1, vec![c]);
        // The text version's mark travels with the state.
        let mut v1 = c;
        if let Some(l) = &mut v1.local {
            l.proxy = 0x12;
        }
        assert_eq!(decode(&encode(1, &[v1], 1472)[0]).unwrap().1, vec![v1]);
        // A kernel's sequence option before ours is skipped.
        let mut with_seq = m.clone();
        let entry = HEADER_LEN;
        with_seq.splice(
            entry + CONN_V4_LEN..entry + CONN_V4_LEN,
            [1u8, 24].into_iter().chain([0u8; 24]),
        );
        let len = (CONN_V4_LEN + 26 + 14) as u16;
        with_seq[entry + 2..entry + 4].copy_from_slice(&len.to_be_bytes());
        let size = with_seq.len() as u16;
        with_seq[2..4].copy_from_slice(&size.to_be_bytes());
        assert_eq!(decode(&with_seq).unwrap().1, vec![c]);
        let mut bad = m.clone();
        bad[HEADER_LEN + CONN_V4_LEN + 1] = 40;
        assert_eq!(decode(&bad), Err(SyncError::Malformed));
        c.v6 = true;
        c.local = c.local.map(|l| SyncLocal { snat: true, ..l });
        let m6 = &encode(1, &[c], 1472)[0];
        assert_eq!(m6.len(), HEADER_LEN + CONN_V6_LEN + 2 + 24);
        assert_eq!(decode(m6).unwrap().1, vec![c]);
    }

    #[test]
    fn full_queues_drop_and_count() {
        let ch = SyncChannel::default();
        for _ in 0..QUEUE_LEN + 5 {
            ch.note(SyncConn::default());
        }
        assert_eq!(ch.outbox.len(), QUEUE_LEN);
        assert_eq!(ch.out_dropped.load(Relaxed), 5);
    }
}
