//! Per-worker connection tracking: the IPVS TCP state machine and the connection table.

pub mod index;
pub mod state;
pub mod table;

pub use state::{account_transition, transition, Direction, TcpEvent, TcpState, Timeouts};
pub use table::{addr16, ip_of, Addr16, Conn, ConnId, ConnTable, InKey, InsertError, OutKey};
