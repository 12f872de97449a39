//! Zero-copy views and in-place emitters for the protocol headers mpgw handles.
//!
//! Every view is `Foo<T>` over a buffer `T: AsRef<[u8]>` (read) or additionally
//! `AsMut<[u8]>` (write), built by a checked `parse` that returns a [`WireError`] naming
//! what was wrong; after `parse` the accessors need no further checks. `FooRepr` types
//! hold the fields of a header to emit into a buffer. [`classify`] walks a whole frame
//! once so the worker can dispatch on the result without re-parsing.

pub mod arp;
pub mod checksum;
mod error;
pub mod ethernet;
mod field;
mod frame;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod mptcp;
pub mod tcp;

pub use error::WireError;
pub use ethernet::MacAddr;
pub use frame::{classify, Frame, L3, L4};

/// IP protocol numbers (IPv4 protocol / IPv6 next header) mpgw recognises.
pub mod ip_proto {
    /// IPv6 hop-by-hop options.
    pub const HOP_BY_HOP: u8 = 0;
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 routing header.
    pub const ROUTING: u8 = 43;
    /// IPv6 fragment header.
    pub const FRAGMENT: u8 = 44;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 "no next header".
    pub const NO_NEXT: u8 = 59;
    /// IPv6 destination options.
    pub const DEST_OPTS: u8 = 60;
}
