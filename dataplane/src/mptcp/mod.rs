//! MPTCP above the wire format (RFC 8684). The option formats live in
//! [`crate::wire::mptcp`]; this module holds the protocol logic:
//! - [`crypto`]: keys, tokens, IDSNs, the MP_JOIN and ADD_ADDR HMACs, the DSS checksum
//!   (on `sha256`: SHA-256 and HMAC from precomputed key states);
//! - [`token`]: the per-worker table of local tokens, whose bits name the owner worker;
//! - [`reassembly`]: zero-copy DSN reassembly with the shared receive window and DATA_FIN;
//! - [`scheduler`]: which subflow sends next (`default`, `roundrobin`, `redundant`,
//!   `blest`);
//! - [`coupled`]: the coupled congestion-avoidance increases LIA and OLIA;
//! - [`stack`]: the per-core MPTCP stack — connections ([`msk`]) over subflows
//!   ([`subflow`], a TCP hook), both roles, with MIB counters ([`mib`]).

pub mod coupled;
pub mod crypto;
pub mod mib;
pub mod msk;
pub mod reassembly;
pub mod scheduler;
mod sha256;
pub mod stack;
pub mod subflow;
pub mod token;
