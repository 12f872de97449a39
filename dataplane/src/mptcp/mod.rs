//! MPTCP above the wire format (RFC 8684). The option formats live in
//! [`crate::wire::mptcp`]; this module holds the protocol logic, starting with the
//! cryptography of handshakes, joins and address announcements.

pub mod crypto;
