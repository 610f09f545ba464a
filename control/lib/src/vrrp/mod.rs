//! VRRP (RFC 3768 version 2, RFC 5798 version 3) built into rvs, configured as keepalived
//! configures it (`ah`: keepalived's IPsec AH authentication): `conf` reads `vrrp_instance`, `vrrp_script` and `vrrp_sync_group`;
//! `machine` is an instance's state machine (pure, time passed in); `process` counts the
//! processes `vrrp_track_process` tracks; `run` drives the
//! machines with sockets on the data ports' host twins and hands the addresses' ownership
//! to the appliance, which publishes it to the workers (only MASTER answers ARP for them
//! and forwards their traffic); its parts: `run::sockets`, `run::frames` (what it sends
//! as whole frames), `run::host` (the twins' addresses, routes and rules), `run::scripts`.

pub mod ah;
pub mod conf;
pub mod fifo;
pub mod machine;
pub mod pacing;
pub mod process;
pub mod reload;
pub mod run;
pub mod stats;
pub mod vet;

pub use conf::{VrrpConf, VrrpRoute};
pub use machine::State;
pub use run::{
    add_static_addresses, all_standby, run_waited, twin_route, Host, InstanceStatus, Link,
    VrrpRuntime,
};
pub use stats::{keepalived_stats, tmp_dir};
