//! Userspace TCP (RFC 9293): a sans-I/O engine, one instance per core, zero-copy.
//!
//! - [`Connection`]: one connection's state machine; segments and time in, segment
//!   descriptions ([`SegmentOut`]) and [`Events`] out, next deadline from `poll_at`;
//! - [`Table`]: the per-core connection table with listeners, a bounded half-open set,
//!   SYN cookies ([`cookie`]) and the timer wheel ([`wheel`]);
//! - [`emit::emit_headers`]: Ethernet/IP/TCP headers for a [`SegmentOut`], and
//!   [`ingress::segment_from_frame`], a received frame as a [`SegmentIn`];
//! - [`Payload`]: the zero-copy byte range every data path passes around;
//! - [`cc`]: CUBIC and NewReno behind an enum, with a coupling hook for MPTCP;
//! - [`hook`]: the MPTCP extension points ([`Hook`], [`NoHook`]).
//!
//! Time is an [`Instant`] the caller passes in; nothing here reads a clock, blocks, or
//! copies payload ([`ConnStats::copied_bytes`] stays 0). Every queue is bounded: send
//! data by the send budget, in-order data by the receive budget (the advertised
//! window), out-of-order data in segments and bytes, the table in connections and
//! half-open connections, the ready queue by the table.
//!
//! Design choices worth knowing (see each module for details):
//! - events are a coalescing bit set per connection, not a queue, so they need no
//!   storage and cannot overflow;
//! - the 4-tuple hash is FxHash-style with a per-table secret seed ([`hash`]);
//!   ISNs, timestamp offsets and cookies use SipHash-2-4 with a secret key
//!   ([`secrets`]), as Linux does;
//! - challenge ACKs are rate-limited per connection rather than per host;
//! - tail losses are handled with a probe timeout (TLP-like), not full RACK.

pub mod cc;
pub mod config;
pub mod conn;
pub mod cookie;
pub mod emit;
pub mod hash;
pub mod hook;
pub mod ingress;
pub mod payload;
pub mod reassembly;
pub mod rtt;
pub mod secrets;
pub mod segment;
pub mod send_queue;
pub mod state;
pub mod table;
pub mod time;
pub mod wheel;

pub use cc::{CcAlgorithm, CcView};
pub use config::Config;
pub use conn::{ConnStats, Connection};
pub use hook::{Delivery, Hook, HookSink, NoHook, Verdict};
pub use payload::Payload;
pub use secrets::Secrets;
pub use segment::{FourTuple, PathTx, SegOptions, SegmentIn, SegmentMeta, SegmentOut, SegmentSink};
pub use state::{Events, State};
pub use table::{ConnId, Table, TableConfig, TableStats};
pub use time::Instant;
