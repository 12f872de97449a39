//! The application's view of connections: byte streams with events, the same whether
//! they are TCP connections of a [`Table`] or MPTCP connections of a [`Stack`]
//! (plain TCP included). Services (the diagnostic service, the relay) are written once
//! against [`Streams`] and run over either.
//!
//! The contract is the table's: every id from [`Streams::next_ready`] has new events;
//! after handling them the application calls [`Streams::flush`].

use crate::mptcp::msk::MskId;
use crate::mptcp::stack::Stack;
use crate::port::SharedBuf;
use crate::tcp::{ConnId, Events, FourTuple, Instant, NoHook, Payload, SegmentSink, State, Table};
use std::hash::Hash;
use std::net::SocketAddr;

/// Connections as byte streams.
pub trait Streams<S> {
    /// A connection's handle.
    type Id: Copy + Eq + Hash;

    /// Accepts connections on `addr`.
    fn listen(&mut self, addr: SocketAddr);
    /// Opens a connection from `local` to `remote` (MPTCP when `mptcp` and the
    /// streams speak it); its SYN goes out now. `None` when the table is full or the
    /// tuple is taken.
    fn connect(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        mptcp: bool,
        now: Instant,
        out: &mut impl SegmentSink<S>,
    ) -> Option<Self::Id>;
    /// The next connection with events.
    fn next_ready(&mut self) -> Option<Self::Id>;
    /// Takes the events of `id` since the last call.
    fn take_events(&mut self, id: Self::Id) -> Events;
    /// The local address `id` was accepted on (or opened from).
    fn local_addr(&self, id: Self::Id) -> Option<SocketAddr>;
    /// The transparent listener (its tag) that accepted `id` on a foreign
    /// destination, its `local_addr` (none: an own address, or opened).
    fn transparent(&self, _id: Self::Id) -> Option<u16> {
        None
    }
    /// The next in-order payload.
    fn recv(&mut self, id: Self::Id) -> Option<Payload<S>>;
    /// Length of the payload `recv` would return next.
    fn peek_recv_len(&self, id: Self::Id) -> Option<usize>;
    /// Bytes `send` accepts now; 0 once the connection no longer sends.
    fn send_space(&self, id: Self::Id) -> usize;
    /// Queues `p`; gives it back when it does not fit or the connection does not send.
    fn send(&mut self, id: Self::Id, p: Payload<S>) -> Result<(), Payload<S>>;
    /// True once the peer closed its direction and everything it sent was read.
    fn peer_done(&self, id: Self::Id) -> bool;
    /// Closes our direction after the queued data.
    fn close(&mut self, id: Self::Id);
    /// Resets the connection.
    fn abort(&mut self, id: Self::Id, now: Instant, out: &mut impl SegmentSink<S>);
    /// Transmits what is due and frees the connection once it is over.
    fn flush(&mut self, id: Self::Id, now: Instant, out: &mut impl SegmentSink<S>);
}

impl<S: SharedBuf> Streams<S> for Table<S, NoHook> {
    type Id = ConnId;

    fn listen(&mut self, addr: SocketAddr) {
        Table::listen(self, addr);
    }

    fn connect(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        _mptcp: bool,
        now: Instant,
        out: &mut impl SegmentSink<S>,
    ) -> Option<ConnId> {
        Table::connect(self, FourTuple { local, remote }, NoHook, now, out)
    }

    fn next_ready(&mut self) -> Option<ConnId> {
        Table::next_ready(self)
    }

    fn take_events(&mut self, id: ConnId) -> Events {
        self.get_mut(id).map_or(Events::NONE, |c| c.take_events())
    }

    fn local_addr(&self, id: ConnId) -> Option<SocketAddr> {
        self.get(id).map(|c| c.tuple().local)
    }

    fn recv(&mut self, id: ConnId) -> Option<Payload<S>> {
        self.get_mut(id)?.recv()
    }

    fn peek_recv_len(&self, id: ConnId) -> Option<usize> {
        self.get(id)?.peek_recv_len()
    }

    fn send_space(&self, id: ConnId) -> usize {
        self.get(id)
            .filter(|c| c.state().sends_data())
            .map_or(0, |c| c.send_space())
    }

    fn send(&mut self, id: ConnId, p: Payload<S>) -> Result<(), Payload<S>> {
        match self.get_mut(id) {
            Some(c) => c.send(p),
            None => Err(p),
        }
    }

    fn peer_done(&self, id: ConnId) -> bool {
        self.get(id).is_some_and(|c| {
            c.recv_queued() == 0 && matches!(c.state(), State::CloseWait | State::Closed)
        })
    }

    fn close(&mut self, id: ConnId) {
        if let Some(c) = self.get_mut(id) {
            c.close();
        }
    }

    fn abort(&mut self, id: ConnId, _now: Instant, out: &mut impl SegmentSink<S>) {
        if let Some(c) = self.get_mut(id) {
            c.abort(out);
        }
    }

    fn flush(&mut self, id: ConnId, now: Instant, out: &mut impl SegmentSink<S>) {
        Table::flush(self, id, now, out);
    }
}

impl<S: SharedBuf> Streams<S> for Stack<S> {
    type Id = MskId;

    fn listen(&mut self, addr: SocketAddr) {
        Stack::listen(self, addr);
    }

    fn connect(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        mptcp: bool,
        now: Instant,
        out: &mut impl SegmentSink<S>,
    ) -> Option<MskId> {
        Stack::connect(self, local, remote, mptcp, now, out)
    }

    fn next_ready(&mut self) -> Option<MskId> {
        Stack::next_ready(self)
    }

    fn take_events(&mut self, id: MskId) -> Events {
        Stack::take_events(self, id)
    }

    fn local_addr(&self, id: MskId) -> Option<SocketAddr> {
        self.info(id).map(|i| i.local)
    }

    fn transparent(&self, id: MskId) -> Option<u16> {
        Stack::transparent(self, id)
    }

    fn recv(&mut self, id: MskId) -> Option<Payload<S>> {
        Stack::recv(self, id)
    }

    fn peek_recv_len(&self, id: MskId) -> Option<usize> {
        Stack::peek_recv_len(self, id)
    }

    fn send_space(&self, id: MskId) -> usize {
        Stack::send_space(self, id)
    }

    fn send(&mut self, id: MskId, p: Payload<S>) -> Result<(), Payload<S>> {
        Stack::send(self, id, p)
    }

    fn peer_done(&self, id: MskId) -> bool {
        // Only the peer's FIN (or DATA_FIN) after everything it sent was read: a
        // connection closed by a reset is no end of data (the relay resets the other
        // side when it takes the RESET event; passing a FIN on first would hand a
        // truncated stream over as a complete one).
        self.peer_closed(id)
    }

    fn close(&mut self, id: MskId) {
        Stack::close(self, id);
    }

    fn abort(&mut self, id: MskId, now: Instant, out: &mut impl SegmentSink<S>) {
        Stack::abort(self, id, now, out);
    }

    fn flush(&mut self, id: MskId, now: Instant, out: &mut impl SegmentSink<S>) {
        Stack::flush(self, id, now, out);
    }
}
