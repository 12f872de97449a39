//! Hooks through which a layer above TCP (MPTCP) decides on passive opens, adds and
//! reads options, takes data before delivery, couples congestion control and learns
//! when a connection is freed. Every method but the passive-open factories has a no-op
//! default, so [`NoHook`] costs nothing.
//!
//! A hook often needs state shared by several connections (an MPTCP connection owns
//! many subflows). That state is the hook's [`Hook::Ctx`]; it is not stored in the
//! connection but lent to every call through the segment sink ([`HookSink`]), so the
//! borrow checker, not a lock or `RefCell`, proves that one caller at a time uses it.

use super::cc::CcView;
use super::payload::Payload;
use super::segment::{FourTuple, PathTx, SegmentIn, SegmentMeta, SegmentSink};
use super::table::ConnId;
use crate::seq::TcpSeq;
use crate::wire::tcp::OptionsBuf;

/// What a hook wants done with the segment or data it was shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verdict {
    /// Go on as plain TCP would.
    #[default]
    Continue,
    /// Go on, and acknowledge the segment at once (e.g. the MP_JOIN fourth ACK).
    AckNow,
    /// Go on, and acknowledge the segment by the end of the receive burst: one ACK
    /// answers all the burst brought, or a segment sent before carries it (e.g. a
    /// DATA_FIN on a pure ACK, which the peer repeats on every subflow).
    AckBurst,
    /// Reset the connection (sends a RST and reports [`super::Events::RESET`]).
    Reset,
}

/// What becomes of an in-order payload shown to [`Hook::on_data`].
#[derive(Debug)]
pub enum Delivery<S> {
    /// Queue it for the application as plain TCP would.
    Deliver(Payload<S>),
    /// The hook took it (an MPTCP subflow hands it to its connection's reassembly).
    Taken,
    /// Reset the connection.
    Reset,
}

/// A segment sink that also lends the hook context `C` to the connection's hook calls.
/// Every [`SegmentSink`] lends the empty context `()`.
pub trait HookSink<S, C>: SegmentSink<S> {
    /// Runs `f` with the hook context.
    fn with_ctx<R>(&mut self, f: impl FnOnce(&mut C) -> R) -> R;
}

impl<S, T: SegmentSink<S>> HookSink<S, ()> for T {
    #[inline(always)]
    fn with_ctx<R>(&mut self, f: impl FnOnce(&mut ()) -> R) -> R {
        f(&mut ())
    }
}

/// Per-connection extension points. In subflow mode the payload belongs to a larger
/// data stream: [`Hook::on_data`] sees every in-order payload with its subflow sequence
/// number before the application does, and may take it.
pub trait Hook<S>: Sized {
    /// State shared by the hooks of one table, lent to every call.
    type Ctx;

    /// The hook of a connection a listener accepts for `syn`; `Err` refuses it with a
    /// RST carrying the given options (e.g. MP_TCPRST).
    fn accept(
        ctx: &mut Self::Ctx,
        tuple: &FourTuple,
        syn: &SegmentIn<S>,
    ) -> Result<Self, OptionsBuf>;

    /// True when a SYN to an address and port nothing listens on is still the hook's
    /// to accept (MPTCP routes an MP_JOIN by its token, whatever port it reaches).
    #[inline]
    fn claims_unlistened(_syn: &SegmentIn<S>) -> bool {
        false
    }

    /// The hook of a connection rebuilt from a SYN cookie's final `ack` (its SYN/ACK
    /// carried no options of the hook's, so the hook runs as plain TCP).
    fn accept_cookie(
        ctx: &mut Self::Ctx,
        tuple: &FourTuple,
        ack: &SegmentIn<S>,
    ) -> Result<Self, OptionsBuf>;

    /// The table stored the connection under `id`.
    #[inline]
    fn attach(&mut self, _ctx: &mut Self::Ctx, _id: ConnId) {}

    /// The table freed the connection (closed, reset, timed out or evicted); called
    /// exactly once for every attached hook.
    #[inline]
    fn release(&mut self, _ctx: &mut Self::Ctx) {}

    /// Option bytes the hook may add to a segment with data (`data`) or to a pure ACK;
    /// TCP leaves them free when it sizes payloads and SACK blocks.
    #[inline]
    fn option_space(&self, _data: bool) -> usize {
        0
    }

    /// Bytes the MSS offered in our SYN or SYN/ACK leaves off the configured MSS, so
    /// the peer's segments arrive at a size the hook can pass on whole.
    #[inline]
    fn mss_reserve(&self) -> u16 {
        0
    }

    /// Adds options to an outgoing segment described by `meta` (RSTs included);
    /// `opts` already holds TCP's own options and the hook must fit in what is left.
    #[inline]
    fn add_options(&mut self, _ctx: &mut Self::Ctx, _opts: &mut OptionsBuf, _meta: &SegmentMeta) {}

    /// How the payload of an outgoing segment described by `meta` counts on its path
    /// (`retransmit`: TCP sends it again); called after [`Hook::add_options`] for
    /// segments with payload. Plain TCP does not count.
    #[inline]
    fn path_tx(&self, _ctx: &Self::Ctx, _meta: &SegmentMeta, _retransmit: bool) -> PathTx {
        PathTx::None
    }

    /// Sees the raw options of an incoming segment that passed TCP's checks (and of
    /// the peer's SYN or SYN/ACK).
    #[inline]
    fn on_options(&mut self, _ctx: &mut Self::Ctx, _raw: &[u8], _meta: &SegmentMeta) -> Verdict {
        Verdict::Continue
    }

    /// Sees the raw options of an acceptable RST, just before the connection is reset.
    #[inline]
    fn on_reset(&mut self, _ctx: &mut Self::Ctx, _raw: &[u8]) {}

    /// Sees an in-order payload starting at subflow sequence `seq`, before delivery.
    #[inline]
    fn on_data(&mut self, _ctx: &mut Self::Ctx, _seq: TcpSeq, payload: Payload<S>) -> Delivery<S> {
        Delivery::Deliver(payload)
    }

    /// A coupled congestion-avoidance increase in bytes for `acked` bytes, or `None` to
    /// let the connection's own algorithm decide.
    #[inline]
    fn cc_increase(&mut self, _ctx: &mut Self::Ctx, _view: &CcView, _acked: u32) -> Option<u32> {
        None
    }
}

/// The hook of a plain TCP connection: does nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHook;

impl<S> Hook<S> for NoHook {
    type Ctx = ();

    #[inline]
    fn accept(_: &mut (), _: &FourTuple, _: &SegmentIn<S>) -> Result<Self, OptionsBuf> {
        Ok(NoHook)
    }

    #[inline]
    fn accept_cookie(_: &mut (), _: &FourTuple, _: &SegmentIn<S>) -> Result<Self, OptionsBuf> {
        Ok(NoHook)
    }
}
