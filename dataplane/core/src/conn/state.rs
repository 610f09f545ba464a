//! The IPVS state machines: TCP's three transition tables (input, output, input-only) with
//! flag precedence RST > SYN > FIN > ACK, SCTP's (driven by the first chunk), and the
//! per-state timeouts. A connection stores its state as a byte read by its protocol.

use rvs_wire::proto;

/// The longest timeout IPVS takes: 31 days.
pub const MAX_TIMEOUT: u32 = 31 * 86_400;

/// TCP connection states as IPVS names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    None = 0,
    Established,
    SynSent,
    SynRecv,
    FinWait,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    SynAck,
}

impl TcpState {
    pub const ALL: [TcpState; 11] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];

    pub fn from_u8(v: u8) -> TcpState {
        Self::ALL
            .get(usize::from(v))
            .copied()
            .unwrap_or(TcpState::None)
    }

    /// The name `ipvsadm -L -c` prints.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }

    /// States in which the connection counts as active for the schedulers.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            TcpState::Established | TcpState::SynSent | TcpState::SynRecv | TcpState::SynAck
        )
    }
}

/// Which table a packet is looked up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server through a NAT service.
    Input,
    /// Server to client (NAT replies).
    Output,
    /// Client to server for DR and TUN, which never see replies.
    InputOnly,
}

/// The TCP flag that drives a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpEvent {
    Syn,
    Fin,
    Ack,
    Rst,
}

impl TcpEvent {
    /// RST > SYN > FIN > ACK; None for a segment with none of them (state unchanged).
    pub fn from_flags(flags: u8) -> Option<TcpEvent> {
        use rvs_wire::tcp::{ACK, FIN, RST, SYN};
        if flags & RST != 0 {
            Some(TcpEvent::Rst)
        } else if flags & SYN != 0 {
            Some(TcpEvent::Syn)
        } else if flags & FIN != 0 {
            Some(TcpEvent::Fin)
        } else if flags & ACK != 0 {
            Some(TcpEvent::Ack)
        } else {
            None
        }
    }
}

use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    SynAck as SA, SynRecv as SR, SynSent as SS, TimeWait as TW,
};

/// One set of IPVS's TCP transition tables: input, output and input-only (DR, TUN).
#[derive(Debug)]
pub struct TcpTables {
    input: [[TcpState; 11]; 4],
    output: [[TcpState; 11]; 4],
    input_only: [[TcpState; 11]; 4],
}

/// IPVS's tables.
pub static TCP_TABLES: TcpTables = TcpTables {
    input: INPUT,
    output: OUTPUT,
    input_only: INPUT_ONLY,
};

/// IPVS's secure_tcp tables (`tcp_states_dos`): a NAT connection is established only once
/// the server answered the client's handshake (its SYN-ACK, then a segment of its own), so
/// a spoofed SYN and ACK leave an embryonic entry; input-only ones pass by SYNACK.
pub static SECURE_TCP_TABLES: TcpTables = TcpTables {
    input: [
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SA],
        [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, SA],
        [ES, ES, SS, SR, FW, TW, CL, CW, CL, LI, SA],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
    output: [
        [SS, ES, SS, SA, SS, SS, SS, SS, SS, LI, SA],
        [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    input_only: [
        [SA, ES, ES, SR, SA, SA, SA, SA, SA, SA, SA],
        [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
};

/// Rows syn, fin, ack, rst; columns by current state NO ES SS SR FW TW CL CW LA LI SA.
const INPUT: [[TcpState; 11]; 4] = [
    [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
    [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
];
const OUTPUT: [[TcpState; 11]; 4] = [
    [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
    [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
    [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
    [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
];
const INPUT_ONLY: [[TcpState; 11]; 4] = [
    [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
    [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
];

/// The state after a segment with `flags` seen in `dir`.
pub fn transition(dir: Direction, state: TcpState, flags: u8) -> TcpState {
    transition_by(&TCP_TABLES, dir, state, flags)
}

/// [`transition`] by `tables` ([`TCP_TABLES`] or [`SECURE_TCP_TABLES`]).
pub fn transition_by(tables: &TcpTables, dir: Direction, state: TcpState, flags: u8) -> TcpState {
    let Some(event) = TcpEvent::from_flags(flags) else {
        return state;
    };
    let row = match event {
        TcpEvent::Syn => 0,
        TcpEvent::Fin => 1,
        TcpEvent::Ack => 2,
        TcpEvent::Rst => 3,
    };
    let table = match dir {
        Direction::Input => &tables.input,
        Direction::Output => &tables.output,
        Direction::InputOnly => &tables.input_only,
    };
    // In range by construction (a row per event, a column per state): no check remains.
    let next = table.get(row).and_then(|r| r.get(state as usize));
    next.copied().unwrap_or(state)
}

/// SCTP association states as IPVS names them (as seen by the real server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SctpState {
    None = 0,
    Init1,
    Init,
    CookieSent,
    CookieReplied,
    CookieWait,
    Cookie,
    CookieEchoed,
    Established,
    ShutdownSent,
    ShutdownReceived,
    ShutdownAckSent,
    Rejected,
    Closed,
}

impl SctpState {
    pub const ALL: [SctpState; 14] = [
        SctpState::None,
        SctpState::Init1,
        SctpState::Init,
        SctpState::CookieSent,
        SctpState::CookieReplied,
        SctpState::CookieWait,
        SctpState::Cookie,
        SctpState::CookieEchoed,
        SctpState::Established,
        SctpState::ShutdownSent,
        SctpState::ShutdownReceived,
        SctpState::ShutdownAckSent,
        SctpState::Rejected,
        SctpState::Closed,
    ];

    pub fn from_u8(v: u8) -> SctpState {
        Self::ALL
            .get(usize::from(v))
            .copied()
            .unwrap_or(SctpState::None)
    }

    /// The name `ipvsadm -L -c` prints (the kernel's).
    pub fn name(self) -> &'static str {
        const NAMES: [&str; 14] = [
            "NONE",
            "INIT1",
            "INIT",
            "C-SENT",
            "C-REPLIED",
            "C-WAIT",
            "COOKIE",
            "C-ECHOED",
            "ESTABLISHED",
            "S-SENT",
            "S-RECEIVED",
            "S-ACK-SENT",
            "REJECTED",
            "CLOSED",
        ];
        NAMES.get(self as usize).copied().unwrap_or("NONE")
    }

    /// Only an established association counts active.
    pub fn is_active(self) -> bool {
        self == SctpState::Established
    }
}

/// The event a chunk type is to the SCTP machine: DATA (also SACK, HEARTBEAT, ECN and any
/// unknown type), INIT, INIT ACK, COOKIE ECHO, COOKIE ACK, SHUTDOWN, SHUTDOWN ACK,
/// SHUTDOWN COMPLETE, ERROR, ABORT.
fn sctp_event(chunk_type: u8) -> usize {
    use rvs_wire::sctp::chunk;
    match chunk_type {
        chunk::INIT => 1,
        chunk::INIT_ACK => 2,
        chunk::COOKIE_ECHO => 3,
        chunk::COOKIE_ACK => 4,
        chunk::SHUTDOWN => 5,
        chunk::SHUTDOWN_ACK => 6,
        chunk::SHUTDOWN_COMPLETE => 7,
        chunk::ERROR => 8,
        chunk::ABORT => 9,
        _ => 0,
    }
}

mod sctp_tables {
    use super::SctpState;
    use SctpState::{
        Closed as CL, Cookie as CO, CookieEchoed as CE, CookieReplied as CR, CookieSent as CS,
        CookieWait as CW, Established as ES, Init as IN, Init1 as I1, Rejected as RJ,
        ShutdownAckSent as SA, ShutdownReceived as SR, ShutdownSent as SS,
    };

    // Rows: data, init, init-ack, cookie-echo, cookie-ack, shutdown, shutdown-ack,
    // shutdown-complete, error, abort. Columns by state NO I1 IN CS CR CW CO CE ES SS SR SA RJ CL.
    pub(super) const INPUT: [[SctpState; 14]; 10] = [
        [ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [I1, IN, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, IN, IN],
        [CW, CW, CW, CS, CR, CO, CO, CE, ES, SS, SR, SA, RJ, CL],
        [CR, IN, IN, CR, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [ES, I1, IN, CS, CR, CW, CO, ES, ES, SS, SR, SA, RJ, CL],
        [SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL],
        [CL, IN, IN, CS, CR, CW, CO, CE, ES, CL, SR, CL, RJ, CL],
        [CL, CL, CL, CS, CR, CW, CO, CE, ES, SS, SR, CL, RJ, CL],
        [CL, I1, IN, CS, CR, CW, CO, CL, ES, SS, SR, SA, RJ, CL],
        [CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL],
    ];
    pub(super) const OUTPUT: [[SctpState; 14]; 10] = [
        [ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [CW, CW, CW, CW, CW, CW, CW, CW, ES, CW, CW, CW, CW, CW],
        [CS, CS, CS, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [CE, CE, CE, CE, CE, CE, CE, CE, ES, SS, SR, SA, RJ, CL],
        [ES, ES, ES, ES, ES, ES, ES, ES, ES, SS, SR, SA, RJ, CL],
        [SS, SS, SS, SS, SS, SS, SS, SS, SS, SS, SR, SA, RJ, CL],
        [SA, SA, SA, SA, SA, CW, CO, CE, ES, SA, SA, SA, RJ, CL],
        [CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL],
    ];
    pub(super) const INPUT_ONLY: [[SctpState; 14]; 10] = [
        [ES, I1, IN, CS, CR, ES, CO, CE, ES, SS, SR, SA, RJ, CL],
        [I1, IN, IN, IN, IN, IN, CO, CE, ES, SS, SR, SA, IN, IN],
        [CE, CE, CE, CE, CE, CE, CO, CE, ES, SS, SR, SA, RJ, CL],
        [ES, ES, ES, ES, ES, ES, CO, CE, ES, SS, SR, SA, RJ, CL],
        [ES, I1, IN, ES, ES, CW, ES, ES, ES, SS, SR, SA, RJ, CL],
        [SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL],
        [CL, IN, IN, CS, CR, CW, CO, CE, CL, CL, SR, CL, RJ, CL],
        [CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, CL, CL, RJ, CL],
        [CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL],
    ];
}

/// The SCTP state after a packet whose state chunk ([`rvs_wire::SctpPacket::state_chunk`])
/// is `chunk_type`, seen in `dir`.
pub fn sctp_transition(dir: Direction, state: SctpState, chunk_type: u8) -> SctpState {
    let table = match dir {
        Direction::Input => &sctp_tables::INPUT,
        Direction::Output => &sctp_tables::OUTPUT,
        Direction::InputOnly => &sctp_tables::INPUT_ONLY,
    };
    let next = table
        .get(sctp_event(chunk_type))
        .and_then(|r| r.get(state as usize));
    next.copied().unwrap_or(state)
}

/// A UDP entry's state until its client's second datagram (0 after, and for one made by
/// sync or one-packet scheduling): UDP has no states of its own (listed "UDP", its one
/// timeout, never active, synced as 0); this one keeps a flow on the embryonic list, which
/// a flood of spoofed datagrams fills.
pub const UDP_FIRST_DATAGRAM: u8 = 1;
/// A UDP entry's mark once its server answered (a NAT reply), beside
/// [`UDP_FIRST_DATAGRAM`]: it assures the flow's persistence template, as IPVS's UDP does.
pub const UDP_ANSWERED: u8 = 2;

/// Whether a connection in `state` is past its embryonic stage (what the flood defence
/// evicts): TCP and SCTP once ESTABLISHED, UDP from the client's second datagram, any
/// other protocol at once. A connection leaves that stage once and never returns.
pub fn leaves_embryonic(proto_num: u8, state: u8) -> bool {
    match proto_num {
        proto::TCP => state == TcpState::Established as u8,
        proto::SCTP => state == SctpState::Established as u8,
        proto::UDP => state & UDP_FIRST_DATAGRAM == 0,
        _ => true,
    }
}

/// Whether a TCP or SCTP connection in `state` is over (TIME_WAIT or CLOSE; CLOSED): a new
/// connection may take its ports.
pub fn state_is_finished(proto_num: u8, state: u8) -> bool {
    match proto_num {
        proto::TCP => matches!(
            TcpState::from_u8(state),
            TcpState::TimeWait | TcpState::Close
        ),
        proto::SCTP => SctpState::from_u8(state) == SctpState::Closed,
        _ => false,
    }
}

/// Whether a connection's move `from` -> `to` assures its persistence template (IPVS's
/// ASSURED): TCP and SCTP reaching ESTABLISHED, UDP's first answer from its server.
pub fn assures(proto_num: u8, from: u8, to: u8) -> bool {
    match proto_num {
        proto::TCP => to == TcpState::Established as u8 && from != to,
        proto::SCTP => to == SctpState::Established as u8 && from != to,
        proto::UDP => to & UDP_ANSWERED != 0 && from & UDP_ANSWERED == 0,
        _ => false,
    }
}

/// Whether a stored state counts the connection active (TCP: ESTABLISHED, SYN_SENT,
/// SYN_RECV, SYNACK; SCTP: ESTABLISHED; UDP never).
pub fn state_is_active(proto_num: u8, state: u8) -> bool {
    match proto_num {
        proto::TCP => TcpState::from_u8(state).is_active(),
        proto::SCTP => SctpState::from_u8(state).is_active(),
        _ => false,
    }
}

/// The state's name in `ipvsadm -L -c` (UDP's is "UDP").
pub fn state_name(proto_num: u8, state: u8) -> &'static str {
    match proto_num {
        proto::TCP => TcpState::from_u8(state).name(),
        proto::SCTP => SctpState::from_u8(state).name(),
        proto::UDP => "UDP",
        _ => "ERR!",
    }
}

/// Moves a connection between the server's active and inactive counts when that changes.
pub fn account_active(load: &crate::sched::DestLoad, was: bool, is: bool) {
    if was != is {
        load.set_active(is);
    }
}

/// Per-state timeouts in seconds (`ipvsadm --set tcp tcpfin udp` sets ESTABLISHED,
/// FIN_WAIT and UDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp: [u32; 11],
    pub udp: u32,
    /// Fixed at the kernel's defaults: ipvsadm has no option for them.
    pub sctp: [u32; 14],
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            //   NO  ES   SS   SR  FW   TW   CL  CW  LA  LI   SA
            tcp: [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120],
            udp: 300,
            //    NO I1  IN  CS  CR  CW  CO  CE  ES   SS  SR  SA  RJ CL
            sctp: [2, 4, 61, 61, 61, 61, 61, 61, 900, 61, 61, 61, 4, 61],
        }
    }
}

impl Timeouts {
    pub fn tcp_state(&self, s: TcpState) -> u32 {
        self.tcp.get(s as usize).copied().unwrap_or(self.tcp[0])
    }

    /// The timeout of a connection of `proto` in stored state `state`.
    #[inline]
    pub fn of(&self, proto_num: u8, state: u8) -> u32 {
        // A state byte is its state's index (an unknown one reads as NONE, as `from_u8`).
        let by_index = |table: &[u32]| table.get(usize::from(state)).or(table.first()).copied();
        match proto_num {
            proto::TCP => by_index(&self.tcp).unwrap_or(0),
            proto::SCTP => by_index(&self.sctp).unwrap_or(0),
            _ => self.udp,
        }
    }

    /// `ipvsadm --set tcp tcpfin udp`; 0 leaves a value unchanged, as ipvsadm does.
    pub fn set(&mut self, tcp: u32, tcpfin: u32, udp: u32) {
        // The kernel's (and ipvsadm's) bound, whatever the caller checked.
        let (tcp, tcpfin, udp) = (
            tcp.min(MAX_TIMEOUT),
            tcpfin.min(MAX_TIMEOUT),
            udp.min(MAX_TIMEOUT),
        );
        let mut put = |state: TcpState, value: u32| {
            if let Some(t) = self.tcp.get_mut(state as usize).filter(|_| value != 0) {
                *t = value;
            }
        };
        put(TcpState::Established, tcp);
        put(TcpState::FinWait, tcpfin);
        if udp != 0 {
            self.udp = udp;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Timeouts::of` reads a state byte as its index: the same as through the enums for
    /// every byte (unknown ones as NONE).
    #[test]
    fn a_timeout_is_looked_up_by_the_state_byte() {
        let mut t = Timeouts::default();
        for (i, v) in t.tcp.iter_mut().enumerate() {
            *v = 1000 + i as u32;
        }
        for (i, v) in t.sctp.iter_mut().enumerate() {
            *v = 2000 + i as u32;
        }
        for b in 0..=u8::MAX {
            assert_eq!(
                t.of(proto::TCP, b),
                t.tcp_state(TcpState::from_u8(b)),
                "TCP {b}"
            );
            let sctp = t.sctp[SctpState::from_u8(b) as usize];
            assert_eq!(t.of(proto::SCTP, b), sctp, "SCTP {b}");
            assert_eq!(t.of(proto::UDP, b), t.udp);
        }
    }
    use rvs_wire::tcp::{ACK, FIN, PSH, RST, SYN};

    /// Only ESTABLISHED ends a TCP or SCTP connection's embryonic stage, only UDP's
    /// first-datagram state keeps a UDP flow in it, and other protocols are never in it.
    #[test]
    fn the_embryonic_stage_ends_at_established_or_the_second_datagram() {
        for b in 0..=u8::MAX {
            let tcp = TcpState::from_u8(b) == TcpState::Established;
            assert_eq!(leaves_embryonic(proto::TCP, b), tcp, "TCP {b}");
            let sctp = SctpState::from_u8(b) == SctpState::Established;
            assert_eq!(leaves_embryonic(proto::SCTP, b), sctp, "SCTP {b}");
            assert_eq!(leaves_embryonic(proto::UDP, b), b & UDP_FIRST_DATAGRAM == 0);
            assert!(leaves_embryonic(proto::ICMP, b));
        }
    }

    #[test]
    fn sctp_states_as_ipvs_walks_them() {
        use rvs_wire::sctp::chunk::*;
        use SctpState as S;
        // NAT: both directions seen, the server answering the client's INIT.
        let mut s = S::None;
        for (dir, c, want) in [
            (Direction::Input, INIT, S::Init1),
            (Direction::Input, INIT, S::Init),
            (Direction::Output, INIT_ACK, S::CookieSent),
            (Direction::Input, COOKIE_ECHO, S::CookieReplied),
            (Direction::Output, COOKIE_ACK, S::Established),
            (Direction::Input, HEARTBEAT, S::Established),
            (Direction::Output, SHUTDOWN, S::ShutdownSent),
            (Direction::Input, SHUTDOWN_ACK, S::Closed),
        ] {
            s = sctp_transition(dir, s, c);
            assert_eq!(s, want, "{dir:?} {c}");
        }
        // An INIT answered by ABORT: REJECTED, with its short timer.
        let s = sctp_transition(Direction::Input, S::None, INIT);
        assert_eq!(sctp_transition(Direction::Output, s, ABORT), S::Rejected);
        assert_eq!(Timeouts::default().of(proto::SCTP, S::Rejected as u8), 4);
        assert_eq!(
            Timeouts::default().of(proto::SCTP, S::Established as u8),
            900
        );
        // Input only (DR/TUN): the COOKIE ECHO establishes.
        let s = sctp_transition(Direction::InputOnly, S::Init1, COOKIE_ECHO);
        assert_eq!(s, S::Established);
        assert_eq!(
            sctp_transition(Direction::InputOnly, s, SHUTDOWN_ACK),
            S::Closed
        );
        // Unknown chunk types are DATA.
        assert_eq!(
            sctp_transition(Direction::Input, S::None, 0xc0),
            S::Established
        );
        assert!(state_is_active(proto::SCTP, S::Established as u8));
        assert!(!state_is_active(proto::SCTP, S::CookieEchoed as u8));
        assert_eq!(
            state_name(proto::SCTP, S::ShutdownAckSent as u8),
            "S-ACK-SENT"
        );
        assert_eq!(state_name(proto::UDP, 0), "UDP");
    }

    #[test]
    fn timeouts_are_bounded_as_the_kernel_bounds_them() {
        let mut t = Timeouts::default();
        t.set(u32::MAX, u32::MAX, 7);
        assert_eq!(t.tcp_state(TcpState::Established), MAX_TIMEOUT);
        assert_eq!(t.tcp_state(TcpState::FinWait), MAX_TIMEOUT);
        assert_eq!(t.udp, 7);
    }

    #[test]
    fn a_nat_connection_from_syn_to_time_wait() {
        let mut s = TcpState::None;
        let steps = [
            (Direction::Input, SYN, TcpState::SynRecv),
            (Direction::Output, SYN | ACK, TcpState::SynRecv),
            (Direction::Input, ACK, TcpState::Established),
            (Direction::Input, PSH | ACK, TcpState::Established),
            (Direction::Input, FIN | ACK, TcpState::CloseWait),
            (Direction::Output, FIN | ACK, TcpState::TimeWait),
            (Direction::Input, ACK, TcpState::TimeWait),
        ];
        for (dir, flags, want) in steps {
            s = transition(dir, s, flags);
            assert_eq!(s, want, "{dir:?} {flags:#x}");
        }
    }

    /// secure_tcp: NAT reaches ESTABLISHED only through the server's answers; a client's
    /// SYN and ACK alone (a spoofed pair) stay SYN_RECV. DR passes by SYNACK.
    #[test]
    fn secure_tcp_waits_for_the_server() {
        let walk = |dir_flags: &[(Direction, u8)]| {
            let mut s = TcpState::None;
            dir_flags
                .iter()
                .map(|&(dir, flags)| {
                    s = transition_by(&SECURE_TCP_TABLES, dir, s, flags);
                    s
                })
                .collect::<Vec<_>>()
        };
        use Direction::*;
        assert_eq!(walk(&[(Input, SYN), (Input, ACK)]), [SR, SR], "spoofed");
        assert_eq!(
            walk(&[
                (Input, SYN),
                (Output, SYN | ACK),
                (Input, ACK),
                (Output, ACK)
            ]),
            [SR, SA, SA, ES]
        );
        assert_eq!(walk(&[(InputOnly, SYN), (InputOnly, ACK)]), [SA, ES]);
        // The usual tables take the spoofed pair to ESTABLISHED.
        assert_eq!(transition(Input, SR, ACK), ES);
        // Established connections move alike in both (the fast lane's shortcut).
        for dir in [Input, Output, InputOnly] {
            for flags in [ACK, PSH | ACK, 0] {
                assert_eq!(transition_by(&SECURE_TCP_TABLES, dir, ES, flags), ES);
            }
        }
    }

    #[test]
    fn dr_sees_only_the_client_side() {
        let mut s = TcpState::None;
        for (flags, want) in [
            (SYN, TcpState::SynRecv),
            (ACK, TcpState::Established),
            (FIN | ACK, TcpState::FinWait),
            (ACK, TcpState::FinWait),
            (RST, TcpState::Close),
        ] {
            s = transition(Direction::InputOnly, s, flags);
            assert_eq!(s, want);
        }
    }

    #[test]
    fn precedence_and_flagless_segments() {
        assert_eq!(
            TcpEvent::from_flags(RST | SYN | FIN | ACK),
            Some(TcpEvent::Rst)
        );
        assert_eq!(TcpEvent::from_flags(SYN | FIN | ACK), Some(TcpEvent::Syn));
        assert_eq!(TcpEvent::from_flags(FIN | ACK), Some(TcpEvent::Fin));
        assert_eq!(TcpEvent::from_flags(PSH), None);
        assert_eq!(
            transition(Direction::Input, TcpState::Established, PSH),
            TcpState::Established
        );
    }

    #[test]
    fn the_three_tables_match_the_reference_row_by_row() {
        // Spot checks where the tables differ.
        assert_eq!(
            transition(Direction::Input, TcpState::Established, FIN),
            TcpState::CloseWait
        );
        assert_eq!(
            transition(Direction::InputOnly, TcpState::Established, FIN),
            TcpState::FinWait
        );
        assert_eq!(
            transition(Direction::Output, TcpState::Established, FIN),
            TcpState::FinWait
        );
        assert_eq!(
            transition(Direction::Input, TcpState::SynAck, RST),
            TcpState::SynRecv
        );
        assert_eq!(
            transition(Direction::InputOnly, TcpState::SynAck, RST),
            TcpState::Close
        );
        assert_eq!(
            transition(Direction::Output, TcpState::Listen, ACK),
            TcpState::Established
        );
        assert_eq!(
            transition(Direction::Output, TcpState::None, SYN),
            TcpState::SynSent
        );
        assert_eq!(
            transition(Direction::Output, TcpState::TimeWait, RST),
            TcpState::TimeWait
        );
    }

    #[test]
    fn the_state_machine_drives_active_and_inactive_counts() {
        let load = crate::sched::DestLoad::default();
        load.bind(); // a new connection counts inactive
        let mut s = TcpState::None;
        let mut seen = Vec::new();
        for (dir, flags) in [
            (Direction::Input, SYN),
            (Direction::Input, ACK),
            (Direction::Input, FIN | ACK),
            (Direction::Output, FIN | ACK),
        ] {
            let next = transition(dir, s, flags);
            account_active(&load, s.is_active(), next.is_active());
            s = next;
            seen.push((load.active(), load.inactive()));
        }
        // SYN_RECV active, ESTABLISHED active, CLOSE_WAIT inactive, TIME_WAIT inactive.
        assert_eq!(seen, vec![(1, 0), (1, 0), (0, 1), (0, 1)]);
        load.unbind(s.is_active());
        assert_eq!((load.active(), load.inactive()), (0, 0));
    }

    #[test]
    fn timeouts_and_active_states() {
        let mut t = Timeouts::default();
        assert_eq!(t.tcp_state(TcpState::Established), 900);
        t.set(3600, 0, 60);
        assert_eq!(
            (
                t.tcp_state(TcpState::Established),
                t.tcp_state(TcpState::FinWait),
                t.udp
            ),
            (3600, 120, 60)
        );
        let active: Vec<_> = TcpState::ALL
            .iter()
            .filter(|s| s.is_active())
            .map(|s| s.name())
            .collect();
        assert_eq!(
            active,
            vec!["ESTABLISHED", "SYN_SENT", "SYN_RECV", "SYNACK"]
        );
    }
}
