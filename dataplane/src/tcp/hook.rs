//! Hooks through which a layer above TCP (MPTCP) adds and reads options, sees data
//! before delivery, couples congestion control and resets a connection. Every method
//! has a no-op default, so [`NoHook`] costs nothing.

use super::cc::CcView;
use super::payload::Payload;
use super::segment::SegmentMeta;
use crate::seq::TcpSeq;
use crate::wire::tcp::OptionsBuf;

/// What a hook wants done with the segment or data it was shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verdict {
    /// Go on as plain TCP would.
    #[default]
    Continue,
    /// Reset the connection (sends a RST and reports [`super::Events::RESET`]).
    Reset,
}

/// Per-connection extension points. In subflow mode the payload belongs to a larger
/// data stream: [`Hook::on_data`] sees every in-order payload with its subflow sequence
/// number before the application does.
pub trait Hook<S> {
    /// Option bytes the hook may add to a data segment; TCP leaves them free when it
    /// sizes payloads.
    #[inline]
    fn option_space(&self) -> usize {
        0
    }

    /// Adds options to an outgoing segment described by `meta`; `opts` already holds
    /// TCP's own options and the hook must fit in what is left.
    #[inline]
    fn add_options(&mut self, _opts: &mut OptionsBuf, _meta: &SegmentMeta) {}

    /// Sees the raw options of an incoming segment that passed TCP's checks.
    #[inline]
    fn on_options(&mut self, _raw: &[u8], _meta: &SegmentMeta) -> Verdict {
        Verdict::Continue
    }

    /// Sees an in-order payload starting at subflow sequence `seq`, before delivery.
    #[inline]
    fn on_data(&mut self, _seq: TcpSeq, _payload: &Payload<S>) -> Verdict {
        Verdict::Continue
    }

    /// A coupled congestion-avoidance increase in bytes for `acked` bytes, or `None` to
    /// let the connection's own algorithm decide.
    #[inline]
    fn cc_increase(&mut self, _view: &CcView, _acked: u32) -> Option<u32> {
        None
    }
}

/// The hook of a plain TCP connection: does nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHook;

impl<S> Hook<S> for NoHook {}
