//! IPVS's SIP persistence engine (`ipvsadm --pe sip`): a UDP service's templates follow a
//! SIP dialog's Call-ID as well as the client's (masked) address, as the kernel's
//! `ip_vs_pe_sip` matches them, so the calls of one SIP proxy spread over the servers while
//! each call stays on one.

use crate::conn::Addr16;
use std::sync::atomic::{fence, AtomicU64, Ordering};

/// The longest Call-ID the engine takes (the kernel's `IP_VS_PEDATA_MAXLEN`); a datagram
/// with a longer one persists by its address alone, as the kernel's does.
pub const CALL_ID_MAX: usize = 255;

/// The first byte of a SIP template's client address (the rest: a hash of the masked
/// client address and the Call-ID); no IPv4-mapped address starts with it.
pub const TEMPLATE_MARK: u8 = 0xfe;

/// The Call-ID of a SIP message (`Call-ID:` or its compact form `i:`, any case, at a line
/// start), trimmed; None when the payload is not a SIP message with one, or the Call-ID
/// is longer than [`CALL_ID_MAX`].
pub fn call_id(payload: &[u8]) -> Option<&[u8]> {
    let mut rest = payload;
    // The start line: a request (METHOD uri SIP/2.0) or a response (SIP/2.0 code).
    let first_end = rest.windows(2).position(|w| w == b"\r\n")?;
    let first = rest.get(..first_end)?;
    if !first.windows(7).any(|w| w == b"SIP/2.0") {
        return None;
    }
    rest = rest.get(first_end + 2..)?;
    while !rest.is_empty() {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or(rest.len());
        let line = rest.get(..end).unwrap_or(rest);
        if line.is_empty() {
            return None; // end of headers
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let (name, value) = (line.get(..colon)?, line.get(colon + 1..)?);
            let name = name.trim_ascii();
            if name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i") {
                let value = value.trim_ascii();
                return (!value.is_empty() && value.len() <= CALL_ID_MAX).then_some(value);
            }
        }
        rest = rest.get(end + 2..).unwrap_or(&[]);
    }
    None
}

/// A SIP template's client address: [`TEMPLATE_MARK`] and 15 bytes of a hash of the
/// client's masked address and the Call-ID (the kernel's template matches both).
pub fn template_addr(call_id: &[u8], client: &Addr16) -> Addr16 {
    let (mut a, mut b): (u64, u64) = (0xcbf2_9ce4_8422_2325, 0x8422_2325_cbf2_9ce4);
    for &c in client.iter().chain(call_id) {
        a = (a ^ u64::from(c)).wrapping_mul(0x0000_0100_0000_01b3);
        b = (b ^ u64::from(c))
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(29);
    }
    let mut out = [0u8; 16];
    out[0] = TEMPLATE_MARK;
    out[1..8].copy_from_slice(&a.to_be_bytes()[1..]);
    out[8..].copy_from_slice(&b.to_be_bytes());
    out
}

/// A SIP template's client (masked) and Call-ID: what the kernel's template holds, which
/// its sync messages and connection listing carry.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SipCall {
    pub client: Addr16,
    len: u8,
    bytes: [u8; CALL_ID_MAX],
}

impl SipCall {
    /// None for an empty Call-ID or one longer than [`CALL_ID_MAX`].
    pub fn new(client: Addr16, call_id: &[u8]) -> Option<SipCall> {
        if call_id.is_empty() || call_id.len() > CALL_ID_MAX {
            return None;
        }
        let mut bytes = [0u8; CALL_ID_MAX];
        bytes.get_mut(..call_id.len())?.copy_from_slice(call_id);
        Some(SipCall {
            client,
            len: call_id.len() as u8,
            bytes,
        })
    }

    pub fn call_id(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// The template key the call has (see [`template_addr`]).
    pub fn key(&self) -> Addr16 {
        template_addr(self.call_id(), &self.client)
    }
}

impl std::fmt::Debug for SipCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipCall")
            .field("client", &std::net::Ipv6Addr::from(self.client))
            .field("call_id", &String::from_utf8_lossy(self.call_id()))
            .finish()
    }
}

/// The Call-IDs an appliance keeps by default: its live SIP templates' (a slot each).
pub const SIP_CALL_SLOTS: usize = 4096;
/// Slots a key may take (the oldest of them gives way).
const WAYS: usize = 4;
const CALL_WORDS: usize = CALL_ID_MAX.div_ceil(8);
/// Key (2 words), client (2), Call-ID length and the write's number (1), Call-ID.
const WORDS: usize = 5 + CALL_WORDS;

#[derive(Debug)]
struct CallSlot {
    /// 0: free; odd: being written; else the version written last.
    seq: AtomicU64,
    words: [AtomicU64; WORDS],
}

/// SIP templates' calls by template key, shared by the workers (which note a template's
/// call when they make it) and the control thread (which sends them in sync messages as
/// the kernel's persistence-engine options, writes those a master sends, and lists them).
/// Slots are written under a version (a writer that finds one being written gives up);
/// readers copy a slot and keep it if its version did not move. Nothing is allocated after
/// it is made; a set full of other keys loses the key written longest ago.
#[derive(Debug)]
pub struct SipCalls {
    slots: Box<[CallSlot]>,
    /// Writes so far: each slot's last write number orders a set's slots by age.
    writes: AtomicU64,
    /// Calls written over another template's call (a full set loses its oldest).
    replaced: AtomicU64,
    /// Calls not kept: another writer held the slot.
    not_kept: AtomicU64,
}

fn words_of(a: &Addr16) -> [u64; 2] {
    let (hi, lo) = a.split_at(8);
    [hi, lo].map(|h| u64::from_ne_bytes(h.try_into().unwrap_or_default()))
}

fn addr_of(w: [u64; 2]) -> Addr16 {
    let mut a = [0u8; 16];
    a[..8].copy_from_slice(&w[0].to_ne_bytes());
    a[8..].copy_from_slice(&w[1].to_ne_bytes());
    a
}

impl SipCalls {
    /// A store of at least `slots` slots (a power of two, [`WAYS`] at least).
    pub fn new(slots: usize) -> SipCalls {
        let n = slots.clamp(WAYS, 1 << 24).next_power_of_two();
        SipCalls {
            slots: (0..n)
                .map(|_| CallSlot {
                    seq: AtomicU64::new(0),
                    words: std::array::from_fn(|_| AtomicU64::new(0)),
                })
                .collect(),
            writes: AtomicU64::new(0),
            replaced: AtomicU64::new(0),
            not_kept: AtomicU64::new(0),
        }
    }

    /// Slots in all.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Calls held now (a scan of every slot: for `show sync`).
    pub fn held(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.seq.load(Ordering::Relaxed) != 0)
            .count()
    }

    /// Calls written over another template's call so far.
    pub fn replaced(&self) -> u64 {
        self.replaced.load(Ordering::Relaxed)
    }

    /// Calls not kept so far (a concurrent writer held their slot); their templates go in
    /// the rvs-only form.
    pub fn not_kept(&self) -> u64 {
        self.not_kept.load(Ordering::Relaxed)
    }

    fn set(&self, key: &Addr16) -> &[CallSlot] {
        // The key is a hash already (its first byte the mark).
        let start = (words_of(key)[1] as usize) & (self.slots.len() - 1) & !(WAYS - 1);
        self.slots.get(start..start + WAYS).unwrap_or(&[])
    }

    fn key_in(slot: &CallSlot) -> [u64; 2] {
        let [a, b, ..] = &slot.words;
        [a, b].map(|w| w.load(Ordering::Relaxed))
    }

    /// Notes `call` for the template keyed `key`; false when a concurrent writer had its
    /// slot.
    pub fn keep(&self, key: &Addr16, call: &SipCall) -> bool {
        let set = self.set(key);
        let want = words_of(key);
        let now = self.writes.fetch_add(1, Ordering::Relaxed) as u32;
        let age =
            |s: &CallSlot| now.wrapping_sub((s.words[4].load(Ordering::Relaxed) >> 32) as u32);
        let same = set
            .iter()
            .find(|s| s.seq.load(Ordering::Acquire) != 0 && Self::key_in(s) == want);
        let free = || set.iter().find(|s| s.seq.load(Ordering::Acquire) == 0);
        let slot = same.or_else(free);
        let displaces = slot.is_none();
        let Some(slot) = slot.or_else(|| set.iter().max_by_key(|s| age(s))) else {
            return false;
        };
        let seq = slot.seq.load(Ordering::Relaxed);
        if seq & 1 == 1
            || slot
                .seq
                .compare_exchange(seq, seq | 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            self.not_kept.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if displaces {
            self.replaced.fetch_add(1, Ordering::Relaxed);
        }
        let client = words_of(&call.client);
        let mut id = [0u8; CALL_WORDS * 8];
        id[..CALL_ID_MAX].copy_from_slice(&call.bytes);
        let head = [
            want[0],
            want[1],
            client[0],
            client[1],
            u64::from(call.len) | u64::from(now) << 32,
        ];
        let body = id
            .chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default()));
        for (w, v) in slot.words.iter().zip(head.into_iter().chain(body)) {
            w.store(v, Ordering::Relaxed);
        }
        slot.seq.store((seq | 1) + 1, Ordering::Release);
        true
    }

    /// The call of the template keyed `key`, if kept.
    pub fn find(&self, key: &Addr16) -> Option<SipCall> {
        let want = words_of(key);
        self.set(key).iter().find_map(|slot| {
            let seq = slot.seq.load(Ordering::Acquire);
            if seq == 0 || seq & 1 == 1 || Self::key_in(slot) != want {
                return None;
            }
            let words: [u64; WORDS] = slot.words.each_ref().map(|w| w.load(Ordering::Relaxed));
            fence(Ordering::Acquire);
            if slot.seq.load(Ordering::Relaxed) != seq || Self::key_in(slot) != want {
                return None;
            }
            let mut id = [0u8; CALL_WORDS * 8];
            for (c, w) in id.chunks_exact_mut(8).zip(&words[5..]) {
                c.copy_from_slice(&w.to_ne_bytes());
            }
            let len = usize::from(words[4] as u8).min(CALL_ID_MAX);
            SipCall::new(addr_of([words[2], words[3]]), id.get(..len)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_id_is_read_as_the_kernel_reads_it() {
        assert_eq!(
            call_id(b"SIP/2.0 200 OK\r\nCall-ID:  x1 \r\n\r\n"),
            Some(&b"x1"[..])
        );
        assert_eq!(
            call_id(b"BYE sip:b@h SIP/2.0\r\nVia: x\r\ni: y2\r\n\r\n"),
            Some(&b"y2"[..])
        );
        assert_eq!(call_id(b"GET / HTTP/1.1\r\ni: x\r\n\r\n"), None);
        assert_eq!(
            call_id(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\ni: late\r\n"),
            None
        );
        let long = format!("SIP/2.0 200 OK\r\nCall-ID: {}\r\n\r\n", "c".repeat(256));
        assert_eq!(
            call_id(long.as_bytes()),
            None,
            "longer than the kernel takes"
        );
        let most = format!("SIP/2.0 200 OK\r\nCall-ID: {}\r\n\r\n", "c".repeat(255));
        assert_eq!(call_id(most.as_bytes()).map(<[u8]>::len), Some(255));
    }

    fn mapped(last: u8) -> Addr16 {
        let mut a = [0u8; 16];
        a[10..12].copy_from_slice(&[0xff, 0xff]);
        a[12..].copy_from_slice(&[198, 51, 100, last]);
        a
    }

    #[test]
    fn calls_are_kept_by_template_key_and_the_oldest_of_a_set_gives_way() {
        let calls = SipCalls::new(4);
        let call = |n: u8| SipCall::new(mapped(n), format!("call-{n}@x").as_bytes()).unwrap();
        let longest = SipCall::new(mapped(9), &[b'z'; CALL_ID_MAX]).unwrap();
        assert_eq!(calls.find(&call(1).key()), None);
        for n in 1..=3 {
            assert!(calls.keep(&call(n).key(), &call(n)));
        }
        assert!(calls.keep(&longest.key(), &longest));
        assert_eq!(calls.find(&longest.key()), Some(longest));
        assert_eq!(calls.find(&call(2).key()), Some(call(2)));
        assert_eq!(calls.find(&call(2).key()).unwrap().call_id(), b"call-2@x");
        // Kept again: the same slot, written anew.
        assert!(calls.keep(&call(1).key(), &call(1)));
        // The set is full: the one written longest ago (call-2) gives way.
        assert!(calls.keep(&call(4).key(), &call(4)));
        assert_eq!(calls.find(&call(2).key()), None);
        for n in [1, 3, 4] {
            assert_eq!(calls.find(&call(n).key()), Some(call(n)), "{n}");
        }
        assert_eq!(
            (calls.held(), calls.capacity(), calls.replaced()),
            (4, 4, 1)
        );
        // A slot another writer holds: the call is not kept, and counted.
        let busy = calls
            .slots
            .iter()
            .find(|s| SipCalls::key_in(s) == words_of(&call(3).key()));
        let busy = busy.unwrap();
        let seq = busy.seq.load(Ordering::Relaxed);
        busy.seq.store(seq | 1, Ordering::Relaxed);
        assert!(!calls.keep(&call(3).key(), &call(3)));
        assert_eq!(calls.find(&call(3).key()), None, "being written");
        busy.seq.store(seq, Ordering::Relaxed);
        assert_eq!((calls.not_kept(), calls.replaced()), (1, 1));
        assert_eq!(calls.find(&call(3).key()), Some(call(3)));
        assert_eq!(SipCall::new(mapped(1), b""), None);
        assert_eq!(SipCall::new(mapped(1), &[b'z'; CALL_ID_MAX + 1]), None);
    }

    /// A writer rewrites one key's slot with two calls of different lengths in turn while
    /// a reader reads it: the reader sees a whole call each time, never a mix of two.
    #[test]
    fn a_reader_never_sees_a_call_half_written() {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let calls = Arc::new(SipCalls::new(4));
        let a = SipCall::new(mapped(1), &[b'a'; 200]).unwrap();
        let b = SipCall::new(mapped(2), b"b").unwrap();
        let key = a.key();
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let (calls, done) = (calls.clone(), done.clone());
            std::thread::spawn(move || {
                for now in 0..50_000_000u32 {
                    if done.load(Ordering::Relaxed) {
                        break;
                    }
                    calls.keep(&key, if now % 2 == 0 { &a } else { &b });
                    for _ in 0..20 {
                        std::hint::spin_loop();
                    }
                }
            })
        };
        let (mut seen, mut tries) = ([0; 2], 0);
        while seen.iter().any(|&n| n < 20_000) && tries < 5_000_000 {
            tries += 1;
            if let Some(c) = calls.find(&key) {
                assert!(c == a || c == b, "{c:?}");
                seen[usize::from(c == b)] += 1;
            }
        }
        done.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
    }

    #[test]
    fn a_template_address_is_marked_and_follows_client_and_call() {
        let client = |last: u8| {
            let mut a = [0u8; 16];
            a[10..12].copy_from_slice(&[0xff, 0xff]);
            a[12..].copy_from_slice(&[198, 51, 100, last]);
            a
        };
        let t = template_addr(b"abc@host", &client(1));
        assert_eq!(t[0], TEMPLATE_MARK);
        assert_eq!(t, template_addr(b"abc@host", &client(1)));
        assert_ne!(t, template_addr(b"abc@host", &client(2)));
        assert_ne!(t, template_addr(b"abd@host", &client(1)));
    }
}
