//! The error every wire parser returns.

/// What was wrong with a packet a wire view refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum WireError {
    /// The buffer ends before the header or the length the header claims.
    #[error("truncated")]
    Truncated,
    /// The IP version field does not match the header type.
    #[error("bad IP version")]
    BadVersion,
    /// A header-length field (IHL, TCP data offset, extension length) is impossible.
    #[error("bad header length")]
    BadHeaderLength,
    /// A total or payload length field contradicts the header or the buffer.
    #[error("bad length")]
    BadLength,
    /// A checksum does not verify.
    #[error("bad checksum")]
    BadChecksum,
    /// Well-formed, but a variant mpgw does not handle (e.g. ARP for other than IPv4 over
    /// Ethernet, an IPv6 hop-by-hop header that is not first).
    #[error("unsupported variant")]
    Unsupported,
    /// An IPv6 extension-header chain longer than [`crate::wire::ipv6::MAX_EXTENSION_HEADERS`].
    #[error("too many extension headers")]
    TooManyHeaders,
    /// A malformed option (TCP, IPv6 neighbour discovery).
    #[error("malformed option")]
    BadOption,
    /// An in-place responder got a message that is not the request it answers.
    #[error("not a request")]
    NotRequest,
    /// The buffer has no room for the reply being built.
    #[error("no room")]
    NoRoom,
}
