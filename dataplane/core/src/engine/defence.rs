//! IPVS's memory defences on a worker's table: drop_packet (one in `drop_rate` packets that
//! would open a connection is dropped) and drop_entry (every second 1/32 of the table,
//! from a random slot, is looked over and entries that cost little to lose go: TCP and
//! SCTP handshakes, unassured templates, and entries idle a minute that saw 1 to 8 client
//! packets, those with fewer first, one-packet services' templates among them). The
//! control thread turns them on and off (`update_defense_level`); the snapshot carries the
//! rate and the switch.

use super::*;

/// Client packets past which an entry is never dropped (its count stops there).
pub const IN_PKTS_KEPT: u8 = 9;

/// The client packets a backup counts for a connection a master sent: IPVS's default
/// sync_threshold, which its backup sets (`ip_vs_proc_conn`).
pub const SYNCED_IN_PKTS: u8 = 3;

/// Idle seconds before drop_entry may take an entry that is not a handshake.
const IDLE_BEFORE_DROP: u32 = 60;

/// A worker's state of the two defences.
#[derive(Debug, Default)]
pub(super) struct MemoryDefence {
    /// drop_packet: one in `rate` opening packets dropped (0: off); `countdown` to the next.
    rate: u32,
    countdown: u32,
    /// drop_entry: the second of the last look started, and the look under way (next
    /// slot, slots left).
    looked_at: Option<u32>,
    look: Option<(usize, usize)>,
    /// Per client-packet count 1..=8: entries to pass over before the next is dropped (an
    /// entry with n packets goes one time in n).
    countdowns: [u8; 8],
    random: u64,
    picked: Vec<crate::conn::ConnId>,
}

impl MemoryDefence {
    pub(super) fn new(seed: u64) -> MemoryDefence {
        MemoryDefence {
            random: seed | 1,
            picked: Vec::with_capacity(EXPIRE_BUDGET_MAX),
            ..MemoryDefence::default()
        }
    }

    /// A snapshot's drop rate; a new one starts its count again.
    pub(super) fn adopt(&mut self, rate: u32) {
        if rate != self.rate {
            self.rate = rate;
            self.countdown = rate;
        }
    }

    /// drop_packet: whether this opening packet is the one dropped.
    #[inline]
    pub(super) fn drops_packet(&mut self) -> bool {
        if self.rate == 0 {
            return false;
        }
        self.countdown = self.countdown.saturating_sub(1);
        if self.countdown > 0 {
            return false;
        }
        self.countdown = self.rate;
        true
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64
        let mut x = self.random;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.random = x;
        x
    }

    /// IPVS's todrop_entry for an entry with `in_pkts` client packets, already found idle.
    fn takes(&mut self, in_pkts: u8) -> bool {
        let i = usize::from(in_pkts).wrapping_sub(1);
        let Some(countdown) = self.countdowns.get_mut(i) else {
            return false;
        };
        *countdown = countdown.saturating_sub(1);
        if *countdown > 0 {
            return false;
        }
        *countdown = i as u8 + 1;
        true
    }
}

/// What drop_entry makes of an entry: dropped outright, dropped by the rate of its client
/// packets, or kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Drop,
    ByRate,
    Keep,
}

/// IPVS's ip_vs_random_dropentry for entry `c` (`service`: a template's service).
fn fate(c: &Conn, timeouts: &Timeouts, now: u32, service: TemplateService) -> Fate {
    // Idle a minute: its deadline was last moved at least a minute ago.
    let idle = |timeout: u32| {
        now >= c
            .expires
            .saturating_sub(timeout)
            .saturating_add(IDLE_BEFORE_DROP)
    };
    if c.is_template() {
        // One that controls connections stays. A one-packet service's goes by rate (its
        // client packet count, 0 but on a backup, keeps most); another's goes when none
        // of its connections got established.
        return if c.controls > 0 {
            Fate::Keep
        } else if service.one_packet {
            if idle(service.timeout) {
                Fate::ByRate
            } else {
                Fate::Keep
            }
        } else if !c.assured {
            Fate::Drop
        } else {
            Fate::Keep
        };
    }
    let by_rate = || {
        if idle(timeouts.of(c.proto, c.state)) {
            Fate::ByRate
        } else {
            Fate::Keep
        }
    };
    match c.proto {
        proto::TCP => match c.state {
            s if s == TcpState::SynRecv as u8 || s == TcpState::SynAck as u8 => Fate::Drop,
            s if s == TcpState::Established as u8 => by_rate(),
            _ => Fate::Keep,
        },
        proto::SCTP => match c.state {
            s if s == SctpState::Init1 as u8 || s == SctpState::Init as u8 => Fate::Drop,
            s if s == SctpState::Established as u8 => by_rate(),
            _ => Fate::Keep,
        },
        _ => by_rate(),
    }
}

impl Engine {
    /// drop_entry's upkeep, `budget` (<= [`EXPIRE_BUDGET_MAX`]) slots a call: while the
    /// snapshot has it on, a look over 1/32 of the table from a random slot starts each
    /// second. Returns how many entries went.
    pub fn drop_entries(
        &mut self,
        snap: &Snapshot,
        loads: &[DestLoad],
        now: u32,
        budget: usize,
    ) -> usize {
        let d = &mut self.defence;
        if !snap.drop_entry {
            d.look = None;
            return 0;
        }
        let capacity = self.table.capacity();
        if d.look.is_none() && d.looked_at != Some(now) && capacity > 0 {
            d.looked_at = Some(now);
            let from = (d.next_random() % capacity as u64) as usize;
            d.look = Some((from, (capacity / 32).max(1)));
        }
        let Some((from, left)) = d.look else {
            return 0;
        };
        let mut picked = std::mem::take(&mut d.picked);
        picked.clear();
        let span = left.min(budget).min(picked.capacity());
        let timeouts = self.timeouts;
        let templates = &self.templates;
        let next = self.table.select_live(from, span, &mut picked, |c| {
            fate(c, &timeouts, now, TemplateService::of(templates, c.service)) != Fate::Keep
        });
        let seen = next - from;
        let left = left.saturating_sub(seen.max(1));
        self.defence.look = (left > 0).then_some((if next >= capacity { 0 } else { next }, left));
        let mut dropped = 0;
        for &id in &picked {
            let Some(c) = self.table.get(id).copied() else {
                continue;
            };
            // An FTP control connection whose data connection lives controls it: IPVS
            // passes over entries with `n_control` before any rate is counted.
            if self
                .ftp
                .as_ref()
                .is_some_and(|h| h.control_kept(&c, now).is_some())
            {
                continue;
            }
            let service = TemplateService::of(&self.templates, c.service);
            let go = match fate(&c, &timeouts, now, service) {
                Fate::Drop => true,
                Fate::ByRate => self.defence.takes(c.in_pkts),
                Fate::Keep => false,
            };
            if !go {
                continue;
            }
            if c.is_template() {
                self.release_template(id, loads);
            } else {
                self.release(id, loads);
            }
            dropped += 1;
        }
        self.defence.picked = picked;
        self.counters.dropped_entries.add(dropped as u64);
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(proto_num: u8, state: u8, in_pkts: u8, last: u32, timeouts: &Timeouts) -> Conn {
        let key = InKey {
            proto: proto_num,
            caddr: [0; 16],
            cport: 1,
            vaddr: [0; 16],
            vport: 80,
        };
        let mut c = Conn::new(key, [0; 16], 80, 0, 0, ForwardMethod::Nat, 0);
        c.state = state;
        c.in_pkts = in_pkts;
        c.expires = last + timeouts.of(proto_num, state);
        c
    }

    /// IPVS's ip_vs_random_dropentry: handshakes go at once; established TCP and SCTP
    /// and any UDP by rate once idle a minute with 1 to 8 client packets; templates
    /// unless they control connections or are assured; other states stay.
    #[test]
    fn what_drop_entry_takes() {
        let t = Timeouts::default();
        let other = TemplateService {
            one_packet: false,
            timeout: 300,
        };
        let (tcp, sctp, udp) = (proto::TCP, proto::SCTP, proto::UDP);
        let est = TcpState::Established as u8;
        let cases = [
            (conn(tcp, TcpState::SynRecv as u8, 1, 100, &t), Fate::Drop),
            (conn(tcp, TcpState::SynAck as u8, 2, 100, &t), Fate::Drop),
            (conn(tcp, est, 3, 100, &t), Fate::Keep),
            (conn(tcp, est, 3, 40, &t), Fate::ByRate),
            (conn(tcp, TcpState::FinWait as u8, 3, 0, &t), Fate::Keep),
            (conn(tcp, TcpState::TimeWait as u8, 1, 0, &t), Fate::Keep),
            (conn(sctp, SctpState::Init1 as u8, 1, 100, &t), Fate::Drop),
            (
                conn(sctp, SctpState::Established as u8, 1, 0, &t),
                Fate::ByRate,
            ),
            (
                conn(sctp, SctpState::CookieEchoed as u8, 1, 0, &t),
                Fate::Keep,
            ),
            (conn(udp, 1, 1, 41, &t), Fate::Keep),
            (conn(udp, 1, 1, 40, &t), Fate::ByRate),
        ];
        for (i, (c, want)) in cases.iter().enumerate() {
            assert_eq!(fate(c, &t, 100, other), *want, "case {i}: {c:?}");
        }
        let mut template = conn(tcp, 0, 0, 100, &t);
        template.flags = crate::conn::table::flags::TEMPLATE;
        assert_eq!(
            fate(&template, &t, 100, other),
            Fate::Drop,
            "unassured, controls none"
        );
        template.controls = 1;
        assert_eq!(fate(&template, &t, 100, other), Fate::Keep);
        template.controls = 0;
        template.assured = true;
        assert_eq!(fate(&template, &t, 100, other), Fate::Keep);
        // A one-packet (-o) service's template, assured or not, goes by rate once idle a
        // minute (its 300 s deadline last moved at 40), as IPVS's ip_vs_conn_ops_mode
        // ones; its client packet count (0, 3 from a master) sets the rate.
        let ops = TemplateService {
            one_packet: true,
            timeout: 300,
        };
        template.assured = false;
        template.expires = 340;
        assert_eq!(fate(&template, &t, 100, ops), Fate::ByRate);
        assert_eq!(fate(&template, &t, 99, ops), Fate::Keep, "idle 59 s");
        template.controls = 1;
        assert_eq!(fate(&template, &t, 100, ops), Fate::Keep);
        let mut d = MemoryDefence::new(1);
        assert!(
            !d.takes(0),
            "a master's own template, no client packet counted"
        );
    }

    /// Of entries with n client packets, one in n goes (the first looked at among them);
    /// none with 0 or more than 8.
    #[test]
    fn the_rate_prefers_entries_with_fewer_packets() {
        let mut d = MemoryDefence::new(1);
        for n in 1..=8u8 {
            let taken: Vec<bool> = (0..2 * usize::from(n)).map(|_| d.takes(n)).collect();
            let at: Vec<usize> = (0..taken.len()).filter(|&i| taken[i]).collect();
            assert_eq!(at, [0, usize::from(n)], "{n} packets");
        }
        assert!((0..20).all(|_| !d.takes(0) && !d.takes(IN_PKTS_KEPT)));
    }

    /// drop_packet: one in `rate`, the count starting again with a new rate.
    #[test]
    fn drop_packet_counts_down() {
        let mut d = MemoryDefence::new(1);
        assert!((0..10).all(|_| !d.drops_packet()), "off");
        d.adopt(4);
        let dropped: Vec<usize> = (0..12).filter(|_| d.drops_packet()).collect();
        assert_eq!(dropped.len(), 3);
        d.adopt(4);
        assert!(!d.drops_packet() && !d.drops_packet() && !d.drops_packet());
        assert!(d.drops_packet(), "the same rate keeps its count");
        d.adopt(1);
        assert!(d.drops_packet() && d.drops_packet());
    }
}
