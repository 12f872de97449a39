//! Read-only views of a worker's connections for operators: plain-data snapshots of
//! connections and subflows (`mpgw ss`, with `ss -M`'s field names) and connection
//! events named like `ip mptcp monitor`'s (`mpgw monitor`).
//!
//! Snapshots are built by the worker between bursts, bounded by [`SNAPSHOT_LIMIT`];
//! events are queued by the stack only while a monitor is attached, at most
//! [`EVENT_QUEUE`] between two drains (more are counted and dropped).

use crate::mptcp::msk::Phase;
use crate::tcp::State;
use std::net::SocketAddr;

/// Most connections one worker lists in a snapshot.
pub const SNAPSHOT_LIMIT: usize = 10_000;
/// Most events the stack holds between two drains by its worker.
pub const EVENT_QUEUE: usize = 1024;

/// One worker's connections at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The worker's index.
    pub worker: u16,
    /// Its connections (plain TCP ones included), at most [`SNAPSHOT_LIMIT`].
    pub conns: Vec<ConnInfo>,
    /// More connections exist than were listed.
    pub truncated: bool,
}

/// The relay pairing of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayLeg {
    /// Accepted on a relay listener (else opened by the relay to a backend).
    pub client: bool,
    /// [`ConnInfo::id`] of the other connection of the pair, once it exists.
    pub peer: Option<u32>,
}

/// One connection at the data level (an MPTCP connection, or a plain TCP one with a
/// single subflow). Sequence fields are data sequence numbers (DSNs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// Its slot in the worker's stack: unique among the worker's live connections.
    pub id: u32,
    /// Where it stands.
    pub phase: Phase,
    /// Local address of the initial subflow.
    pub local: SocketAddr,
    /// Remote address of the initial subflow.
    pub remote: SocketAddr,
    /// Our token (0 for a connection that never spoke MPTCP).
    pub token: u32,
    /// The peer's token, 0 until its key is known.
    pub remote_token: u32,
    /// The peer's key is known (`ss`'s `remote_key`).
    pub remote_key: bool,
    /// Fell back to (or always was) plain TCP.
    pub fallback: bool,
    /// DSS checksums in use (`csum_enabled`).
    pub checksum: bool,
    /// A subflow is fully established (the peer has our keys).
    pub fully_established: bool,
    /// Next DSN the application's data gets (`write_seq`).
    pub write_seq: u64,
    /// Oldest DSN not DATA_ACKed (`snd_una`).
    pub snd_una: u64,
    /// Next DSN never sent on a subflow.
    pub snd_nxt: u64,
    /// Next DSN expected from the peer, once receiving (`rcv_nxt`; the DATA_ACK).
    pub rcv_nxt: Option<u64>,
    /// Bytes mapped onto subflows at least once (`bytes_sent`, first transmissions).
    pub bytes_sent: u64,
    /// Bytes the peer DATA_ACKed (`bytes_acked`).
    pub bytes_acked: u64,
    /// Bytes received in order (`bytes_received`).
    pub bytes_received: u64,
    /// Bytes reinjected at the connection level (`bytes_retrans`).
    pub bytes_retrans: u64,
    /// Our addresses announced with ADD_ADDR so far (`add_addr_signal`).
    pub add_addr_signal: u8,
    /// Its relay pairing, if the relay serves it.
    pub relay: Option<RelayLeg>,
    /// Its subflows.
    pub subflows: Vec<SubflowInfo>,
}

/// One subflow (the TCP connection under an MPTCP connection, or the plain TCP
/// connection itself). Byte counts are sequence-space distances (modulo 2³²).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubflowInfo {
    /// Our address and port.
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
    /// Our address id (0 on the initial subflow).
    pub local_id: u8,
    /// The peer's address id.
    pub remote_id: u8,
    /// TCP state.
    pub state: State,
    /// `ss`'s subflow flag letters: `M`/`m` MP_CAPABLE, `J`/`j` MP_JOIN, `B` backup as
    /// the peer asked, `b` backup as we asked, `e` fully established, `c` connected,
    /// `v` a received mapping is in use.
    pub flags: String,
    /// The peer asked us to use it as backup only (we schedule it last).
    pub backup: bool,
    /// Marked stale after timeouts: not scheduled until it recovers.
    pub stale: bool,
    /// Smoothed RTT, µs, once measured.
    pub rtt_us: Option<u64>,
    /// Retransmission timeout, µs.
    pub rto_us: u64,
    /// Congestion window, bytes.
    pub cwnd: u32,
    /// Sender MSS, bytes.
    pub mss: u32,
    /// Bytes in flight.
    pub inflight: u32,
    /// Bytes sent (highest sequence sent less the initial one).
    pub bytes_sent: u64,
    /// Bytes the peer acknowledged.
    pub bytes_acked: u64,
    /// Bytes received in order.
    pub bytes_received: u64,
    /// Segments retransmitted.
    pub retransmits: u64,
    /// Our initial sequence number (`ssnoff`).
    pub ssnoff: u32,
    /// DSN of the received mapping in use (`seq`).
    pub seq: Option<u64>,
    /// Its subflow sequence, relative to the peer's initial one (`sfseq`).
    pub sfseq: Option<u32>,
    /// Its length (`maplen`).
    pub maplen: Option<u32>,
}

/// `ss`'s name of a TCP state.
pub const fn state_name(s: State) -> &'static str {
    match s {
        State::Closed => "CLOSED",
        State::SynSent => "SYN-SENT",
        State::SynReceived => "SYN-RECV",
        State::Established => "ESTAB",
        State::FinWait1 => "FIN-WAIT-1",
        State::FinWait2 => "FIN-WAIT-2",
        State::Closing => "CLOSING",
        State::TimeWait => "TIME-WAIT",
        State::CloseWait => "CLOSE-WAIT",
        State::LastAck => "LAST-ACK",
    }
}

/// The name of a connection phase.
pub const fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Connecting => "connecting",
        Phase::Established => "established",
        Phase::Closed => "closed",
    }
}

/// What happened, with `ip mptcp monitor`'s names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// An MPTCP connection was created (MP_CAPABLE handshake done).
    Created,
    /// It is fully established: the peer has our keys.
    Established,
    /// It closed (both DATA_FINs, a reset, or its last subflow went).
    Closed,
    /// The peer announced an address (ADD_ADDR).
    Announced,
    /// The peer withdrew an address (REMOVE_ADDR).
    Removed,
    /// An additional subflow (MP_JOIN) was established.
    SfEstablished,
    /// A subflow closed.
    SfClosed,
    /// The peer changed a subflow's priority (MP_PRIO).
    SfPrio,
}

impl EventKind {
    /// The name `ip mptcp monitor` prints.
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::Created => "CREATED",
            EventKind::Established => "ESTABLISHED",
            EventKind::Closed => "CLOSED",
            EventKind::Announced => "ANNOUNCED",
            EventKind::Removed => "REMOVED",
            EventKind::SfEstablished => "SF_ESTABLISHED",
            EventKind::SfClosed => "SF_CLOSED",
            EventKind::SfPrio => "SF_PRIO",
        }
    }
}

/// One connection event, with the attributes `ip mptcp monitor` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonitorEvent {
    /// What happened.
    pub kind: EventKind,
    /// Our token of the connection.
    pub token: u32,
    /// Our address and port (`saddr4`/`saddr6`, `sport`), when it concerns one.
    pub local: Option<SocketAddr>,
    /// The peer's address and port (`daddr4`/`daddr6`, `dport`; an announced
    /// address's port is 0 when it named none).
    pub remote: Option<SocketAddr>,
    /// Our address id (`locid`).
    pub local_id: Option<u8>,
    /// The peer's address id (`remid`).
    pub remote_id: Option<u8>,
    /// The subflow is a backup (`backup`).
    pub backup: Option<bool>,
}

impl MonitorEvent {
    /// An event of `kind` for `token` with no attribute yet.
    pub const fn new(kind: EventKind, token: u32) -> Self {
        MonitorEvent {
            kind,
            token,
            local: None,
            remote: None,
            local_id: None,
            remote_id: None,
            backup: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_ip_mptcp_monitor_and_ss() {
        assert_eq!(EventKind::SfEstablished.name(), "SF_ESTABLISHED");
        assert_eq!(EventKind::SfPrio.name(), "SF_PRIO");
        assert_eq!(state_name(State::Established), "ESTAB");
        assert_eq!(state_name(State::SynReceived), "SYN-RECV");
        let e = MonitorEvent::new(EventKind::Created, 7);
        assert_eq!((e.token, e.local, e.backup), (7, None, None));
    }
}
