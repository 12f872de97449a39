//! mpgw's per-core packet path.
//!
//! Layers read like the protocol stack, bottom to top:
//! - [`port`]: the packet-buffer and port traits the dataplane is generic over, with an
//!   in-memory implementation for deterministic tests;
//! - `dpdk` (only where DPDK was found at build time): the safe DPDK layer and its port;
//!   [`eal_args`], its typed EAL arguments, is available everywhere;
//! - [`seq`]: TCP sequence numbers and MPTCP data sequence numbers as distinct types;
//! - [`wire`]: zero-copy views and in-place emitters for Ethernet … TCP and MPTCP options;
//! - [`tcp`]: the userspace TCP engine (sans-I/O, zero-copy, per core);
//! - [`mptcp`]: the MPTCP stack (connections over subflows, both roles) and its
//!   building blocks: keys, tokens, HMACs, checksums, the token table, DSN
//!   reassembly, schedulers and coupled congestion control;
//! - [`host`]: the gateway's own L2/L3 presence (ARP, ICMP echo, neighbour discovery),
//!   and [`neigh`], the neighbour table it learns into; [`transparent`]: which TCP
//!   segments to foreign destinations the gateway takes (transparent listeners);
//! - [`streams`]: the application's view of connections, the same over a TCP table and
//!   an MPTCP stack; [`diag`], the diagnostic service, and [`relay`], the gateway's
//!   TCP/MPTCP relay, are written against it; [`pm`] picks the subflows the relay's
//!   MPTCP connections add;
//! - [`egress`]: TCP segments to frames on the right port, payload chained;
//!   [`handoff`] passes segments to their owner worker, [`flow_steer`] asks the
//!   control thread for `rte_flow` rules that spare joined subflows the hand-off;
//! - [`introspect`]: read-only snapshots of connections and connection events for
//!   operators; [`capture`]: copies of a port's frames for in-gateway packet capture;
//! - [`worker`]: the per-core poll loop that ties them together.

pub mod capture;
pub mod diag;
pub mod eal_args;
pub mod egress;
pub mod flow_steer;
pub mod handoff;
pub mod host;
pub mod introspect;
pub mod mptcp;
pub mod neigh;
pub mod pm;
pub mod port;
pub mod relay;
pub mod rss;
pub mod seq;
pub mod stats;
pub mod streams;
pub mod tcp;
pub mod transparent;
pub mod wire;
pub mod worker;

#[cfg(dpdk)]
pub mod dpdk;
