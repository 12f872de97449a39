//! The safe DPDK layer: EAL start-up, mempools and mbufs, ethdev ports and their queues,
//! lcore workers.
//!
//! Ownership mirrors DPDK's own rules, so misuse is a compile error or an [`Error`], not
//! undefined behaviour:
//! - [`Eal::init`] runs once per process; every DPDK object below keeps the EAL alive, and
//!   `rte_eal_cleanup` runs when the last of them is gone;
//! - a [`Mempool`] is shared (`Clone`, `Send + Sync`); it is freed with its last handle,
//!   or deliberately leaked if mbufs are still out, so an [`Mbuf`] never dangles;
//! - an [`EthDev`] configures and starts a port; its queue pairs are taken once, as
//!   [`EthPort`]s (`Send`, `!Sync`) that implement [`crate::port::Port`] for a worker;
//!   [`EthDev::watch_link`] runs a closure on the port's link-state-change interrupts
//!   until its [`LinkWatch`] is dropped; [`EthDev::flow_validate`] and
//!   [`EthDev::flow_create`] check and install `rte_flow` rules steering one TCP
//!   4-tuple to one queue ([`SteerRule`], [`FlowRule`]);
//! - [`lcore::launch`] runs a closure on a worker lcore and reports a panic as an error;
//! - [`Pdump`] lets `dpdk-dumpcap` capture the ports, [`telemetry`] answers commands of
//!   DPDK's telemetry socket.
//!
//! Nothing here panics (except cloning an [`MbufShared`] past its 16-bit reference count,
//! the way `Arc` aborts on overflow): every failure is an [`Error`] carrying the
//! operation, the errno and DPDK's `rte_strerror` text.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::undocumented_unsafe_blocks
)]

pub mod cycles;
mod eal;
mod error;
mod ethdev;
mod flow;
pub mod lcore;
mod link_watch;
mod mbuf;
mod mempool;
mod pdump;
pub mod telemetry;

pub use crate::eal_args::EalArgs;
pub use dpdk_sys::{DPDK_VERSION, PMD_PATH};
pub use eal::Eal;
pub use error::{Error, Result};
pub use ethdev::{DevInfo, Dropped, EthDev, EthPort, LinkStatus, PortConfig, PortStats};
pub use flow::{FlowRule, Pattern, SteerRule};
pub use link_watch::LinkWatch;
pub use mbuf::{free_bulk, Mbuf, MbufShared};
pub use mempool::{Layout, Mempool, SOCKET_ID_ANY};
pub use pdump::Pdump;
