//! Connection states (RFC 9293 §3.3.2) and the events a connection reports.

use std::ops::{BitOr, BitOrAssign};

/// A connection's state. LISTEN lives in the connection table, not in a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Gone: reset, timed out, or fully closed. The table frees it.
    Closed,
    /// Our SYN is out, waiting for the peer's.
    SynSent,
    /// The peer's SYN arrived and our SYN-ACK is out.
    SynReceived,
    /// Open both ways.
    Established,
    /// We closed; our FIN is not yet acknowledged.
    FinWait1,
    /// We closed and our FIN is acknowledged; the peer may still send.
    FinWait2,
    /// Both closed at once; our FIN not yet acknowledged.
    Closing,
    /// Both closed; lingering to absorb old segments.
    TimeWait,
    /// The peer closed; we may still send.
    CloseWait,
    /// The peer closed, then we did; waiting for the ACK of our FIN.
    LastAck,
}

impl State {
    /// True once the three-way handshake is done (sequence numbers are synchronised).
    pub fn is_synchronized(self) -> bool {
        !matches!(self, State::Closed | State::SynSent | State::SynReceived)
    }

    /// True in states where the peer's data is still accepted.
    pub fn receives_data(self) -> bool {
        matches!(self, State::Established | State::FinWait1 | State::FinWait2)
    }

    /// True in states where the application may still queue data.
    pub fn sends_data(self) -> bool {
        matches!(
            self,
            State::SynSent | State::SynReceived | State::Established | State::CloseWait
        )
    }
}

/// A set of events since they were last taken ([`super::Connection::take_events`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Events(u8);

impl Events {
    /// No event.
    pub const NONE: Events = Events(0);
    /// The handshake completed.
    pub const CONNECTED: Events = Events(1);
    /// In-order data is waiting in [`super::Connection::recv`].
    pub const READABLE: Events = Events(1 << 1);
    /// Send space opened up.
    pub const WRITABLE: Events = Events(1 << 2);
    /// The peer sent FIN: no more data will arrive (half-close).
    pub const PEER_FIN: Events = Events(1 << 3);
    /// The connection finished normally and can be freed.
    pub const CLOSED: Events = Events(1 << 4);
    /// The peer reset the connection (or a hook asked for a reset).
    pub const RESET: Events = Events(1 << 5);
    /// Retransmissions or keepalives went unanswered; the connection is gone.
    pub const TIMED_OUT: Events = Events(1 << 6);

    /// True when every event of `other` is set here.
    pub const fn contains(self, other: Events) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when no event is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for Events {
    type Output = Events;

    fn bitor(self, rhs: Events) -> Events {
        Events(self.0 | rhs.0)
    }
}

impl BitOrAssign for Events {
    fn bitor_assign(&mut self, rhs: Events) {
        self.0 |= rhs.0;
    }
}
