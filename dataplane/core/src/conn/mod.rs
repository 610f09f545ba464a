//! Per-worker connection tracking: the IPVS TCP state machine and the connection table.

pub mod index;
pub mod state;
pub mod table;

pub use state::{
    account_active, assures, leaves_embryonic, sctp_transition, state_is_active, state_is_finished,
    state_name, transition, transition_by, Direction, SctpState, TcpEvent, TcpState, TcpTables,
    Timeouts, SECURE_TCP_TABLES, TCP_TABLES, UDP_ANSWERED, UDP_FIRST_DATAGRAM,
};
pub use table::{
    addr16, addr_word, ip_of, mapped_v4, proxy, v4_mapped, Addr16, AppState, Conn, ConnId,
    ConnTable, InKey, InsertError, Local, OutKey,
};
