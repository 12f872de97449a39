//! The MPTCP subflow: the [`Hook`] that turns a TCP connection of the stack's table
//! into a subflow of an [`Msk`](super::msk::Msk). It runs the MP_CAPABLE and MP_JOIN
//! handshakes in both roles, writes DSS (DATA_ACK, mappings, DATA_FIN) on every
//! segment, reads the peer's options, and hands in-order payload to the connection's
//! reassembly under the DSN its mapping gives (zero copy: payloads are split by
//! reference at mapping boundaries).
//!
//! Mappings are kept per subflow: sent ones by subflow sequence until the subflow
//! acknowledges them (a retransmitted segment carries its original mapping), received
//! ones until their bytes are delivered in order. With DSS checksums, a mapping's
//! bytes are held until the mapping is complete and its checksum is verified.

use super::crypto::{dss_checksum, dss_checksum_ok};
use super::mib::Mib;
use super::msk::{MskId, Note, Phase, SendFin, SfEntry};
use super::stack::Ctx;
use crate::port::SharedBuf;
use crate::seq::{Dsn, TcpSeq};
use crate::tcp::{
    CcView, ConnId, Delivery, Events, FourTuple, Hook, PathTx, Payload, SegmentIn, SegmentMeta,
    Verdict,
};
use crate::transparent::Addressed;
use crate::wire::checksum;
use crate::wire::mptcp::{
    reset_reason, AddAddr, DsnField, Dss, Mapping, MpCapable, MpJoin, MpcVariant, MptcpOption,
    RemoveAddr,
};
use crate::wire::tcp::{OptionsBuf, TcpFlags, TcpOption, TcpOptions};
use arrayvec::ArrayVec;
use std::collections::VecDeque;

/// Received mappings kept per subflow: the in-order one and those of out-of-order
/// segments (bounded like the TCP out-of-order queue, which holds at most a few
/// thousand segments). Beyond this the furthest is forgotten; its data, if it comes
/// before the mapping is sent again, resets the subflow.
const RX_MAPS: usize = 4096;
/// Sent mappings kept per subflow: one per payload handed to the subflow, bounded by
/// its send budget; the bound only guards against a budget misconfigured to millions.
const TX_MAPS: usize = 16_384;

/// Option bytes a data segment needs at most: DSS with a 64-bit DATA_ACK, a 64-bit
/// DSN mapping and a checksum (28), or MP_CAPABLE with data (24).
pub const DATA_OPTION_SPACE: usize = 28;
/// Option bytes a pure ACK needs at most: DSS with a 64-bit DATA_ACK (12).
const ACK_OPTION_SPACE: usize = 12;
/// Option bytes of an MP_FAIL.
const MP_FAIL_SPACE: usize = 12;

/// Which handshake the subflow started with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// The initial subflow, MP_CAPABLE.
    Capable,
    /// An additional subflow, MP_JOIN.
    Join,
    /// Plain TCP (the listener does not speak MPTCP, the peer did not, or fallback).
    Plain,
}

/// Handshake progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Our SYN is out (active).
    SynSent,
    /// The peer's SYN was accepted, our SYN/ACK is out (passive).
    SynReceived,
    /// Active MP_JOIN: the SYN/ACK was verified; our third ACK repeats until the
    /// peer's fourth ACK arrives.
    AwaitFourthAck,
    /// MPTCP established on this subflow.
    Established,
}

/// A mapping we sent: subflow bytes `[seq, seq + len)` carry DSNs `[dsn, dsn + len)`.
#[derive(Clone, Copy, Debug)]
pub(super) struct TxMap {
    /// Absolute subflow sequence of the first byte.
    pub seq: TcpSeq,
    /// DSN of the first byte.
    pub dsn: Dsn,
    /// Length in bytes.
    pub len: u32,
    /// DSS checksum, when checksums are in use.
    pub csum: Option<u16>,
    /// Data sent again at the connection level (a reinjection).
    pub reinjected: bool,
}

/// A mapping received, with absolute subflow sequence numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RxMap {
    seq: TcpSeq,
    dsn: Dsn,
    /// Data bytes (a DATA_FIN's byte excluded).
    len: u32,
    /// The DSS checksum and the data-level length it covers as on the wire (a
    /// DATA_FIN's byte included).
    csum: Option<(u16, u16)>,
}

impl RxMap {
    fn end(&self) -> TcpSeq {
        self.seq + self.len
    }

    fn covers(&self, seq: TcpSeq) -> bool {
        seq.after_eq(self.seq) && seq.before(self.end())
    }
}

/// Pieces of a checksummed mapping held at most: a mapping longer than this many
/// segments cannot be verified and fails like a bad checksum.
const CSUM_PIECES: usize = 64;

/// The bytes of a checksummed mapping received so far, held until it is complete.
#[derive(Debug)]
struct CsumPending<S> {
    map: RxMap,
    /// At most [`CSUM_PIECES`]; on the heap so the subflow stays small (checksums are
    /// rare, and a join should not move kilobytes of empty slots around).
    pieces: Vec<(Dsn, Payload<S>)>,
    /// Folded one's-complement sum of the bytes so far.
    sum: u16,
    /// Bytes so far.
    got: u32,
}

/// The MPTCP hook of one subflow.
pub struct Subflow<S> {
    /// The connection it belongs to.
    msk: MskId,
    /// Its TCP connection, once attached.
    id: Option<ConnId>,
    role: Role,
    stage: Stage,
    /// Our initial sequence number (seen on our SYN or SYN/ACK).
    iss: TcpSeq,
    /// The peer's initial sequence number.
    irs: TcpSeq,
    /// MP_JOIN nonces.
    local_nonce: u32,
    remote_nonce: u32,
    /// Our address id on this subflow (MP_JOIN).
    local_id: u8,
    /// The peer's address id (MP_JOIN SYN, passive).
    remote_id: u8,
    /// The peer asked for this subflow to be a backup (MP_JOIN SYN, passive).
    peer_backup: bool,
    /// We ask the peer to treat this subflow as backup.
    backup: bool,
    /// SYNs sent (active MP_CAPABLE falls back after too many).
    syns_sent: u8,
    /// The peer showed that it saw our keys (active MP_CAPABLE).
    fully_established: bool,
    /// Sent mappings not yet acknowledged by the subflow.
    pub(super) tx: VecDeque<TxMap>,
    /// Received mappings not yet fully delivered, sorted by subflow sequence.
    rx: VecDeque<RxMap>,
    /// A checksummed mapping being collected.
    pending: Option<CsumPending<S>>,
    /// MP_TCPRST reason for our next RST.
    reset_reason: Option<u8>,
    /// An MP_PRIO with `backup` is owed on the next pure ACK.
    prio_due: bool,
    /// Our address of this subflow was withdrawn: the stack resets it.
    withdrawn: bool,
    /// A mapping failed its checksum: MP_FAIL with the DSN of its start goes on every
    /// ACK (and on the RST, if any) until the peer's infinite mapping arrives or the
    /// data is recovered.
    mp_fail: Option<FailTx>,
    /// The peer sent MP_FAIL with this DSN; the stack answers with an infinite mapping.
    fail_rx: Option<Dsn>,
    /// We fell back by an infinite mapping: the segment at this subflow sequence
    /// carries it (with this DSN); earlier ones keep their mappings.
    infinite_tx: Option<(TcpSeq, Dsn)>,
    /// The peer's infinite mapping: from this subflow sequence on, bytes are this DSN
    /// onwards one to one.
    infinite_rx: Option<(TcpSeq, Dsn)>,
    /// After falling back at the peer's infinite mapping: the DSN of the next in-order
    /// subflow byte (at this sequence). The peer sent data again from the failed DSN,
    /// so the connection's DATA_ACK (which held later data) is no guide.
    plain_at: Option<(TcpSeq, Dsn)>,
    /// What our SYN or SYN/ACK's MSS offer leaves off (the stack's
    /// `plain_mss_reserve` on a relay's plain legs, else 0).
    mss_reserve: u16,
}

/// The MPTCP side of a subflow as operators see it.
#[derive(Clone, Copy, Debug)]
pub(super) struct HookView {
    /// Began with MP_CAPABLE (and still speaks MPTCP).
    pub capable: bool,
    /// Began with MP_JOIN.
    pub join: bool,
    /// We asked the peer to use it as backup.
    pub backup: bool,
    /// The peer has our keys (or the join completed).
    pub fully_established: bool,
    /// Our address id.
    pub local_id: u8,
    /// The received mapping in use: DSN, subflow sequence relative to the peer's
    /// initial one, length.
    pub map: Option<(u64, u32, u32)>,
}

/// An MP_FAIL we owe the peer.
#[derive(Clone, Copy, Debug)]
struct FailTx {
    /// Start of the failed mapping.
    dsn: Dsn,
    /// Sent (and counted) at least once.
    sent: bool,
}

impl<S: SharedBuf> Subflow<S> {
    fn new(msk: MskId, role: Role, stage: Stage) -> Self {
        Subflow {
            msk,
            id: None,
            role,
            stage,
            iss: TcpSeq::default(),
            irs: TcpSeq::default(),
            local_nonce: 0,
            remote_nonce: 0,
            local_id: 0,
            remote_id: 0,
            peer_backup: false,
            backup: false,
            syns_sent: 0,
            fully_established: false,
            tx: VecDeque::new(),
            rx: VecDeque::new(),
            pending: None,
            reset_reason: None,
            prio_due: false,
            withdrawn: false,
            mp_fail: None,
            fail_rx: None,
            infinite_tx: None,
            infinite_rx: None,
            plain_at: None,
            mss_reserve: 0,
        }
    }

    /// The hook of an active MP_CAPABLE subflow (a new connection).
    pub(super) fn capable(msk: MskId) -> Self {
        Self::new(msk, Role::Capable, Stage::SynSent)
    }

    /// The hook of a plain TCP connection (MPTCP not wanted or not possible) whose
    /// SYN or SYN/ACK offers an MSS `mss_reserve` bytes below the configured one.
    pub(super) fn plain(msk: MskId, mss_reserve: u16) -> Self {
        Subflow {
            mss_reserve,
            ..Self::new(msk, Role::Plain, Stage::Established)
        }
    }

    /// The hook of an active MP_JOIN subflow with address id `local_id`.
    pub(super) fn join(msk: MskId, local_nonce: u32, local_id: u8, backup: bool) -> Self {
        Subflow {
            local_nonce,
            local_id,
            backup,
            ..Self::new(msk, Role::Join, Stage::SynSent)
        }
    }

    /// The connection it belongs to.
    pub fn msk(&self) -> MskId {
        self.msk
    }

    /// True once the peer showed it has our keys (MP_CAPABLE) or the join completed.
    pub fn fully_established(&self) -> bool {
        self.fully_established
    }

    /// True once it may carry connection data (MPTCP established, or plain TCP).
    pub fn usable(&self) -> bool {
        self.role == Role::Plain || self.stage == Stage::Established
    }

    /// Our address id on this subflow (0 on the initial subflow).
    pub(super) fn local_id(&self) -> u8 {
        self.local_id
    }

    /// What operators see of the hook (`mpgw ss`).
    pub(super) fn view(&self) -> HookView {
        HookView {
            capable: self.role == Role::Capable,
            join: self.role == Role::Join,
            backup: self.backup,
            fully_established: self.fully_established,
            local_id: self.local_id,
            map: self
                .rx
                .front()
                .map(|m| (m.dsn.get(), m.seq.offset_from(self.irs), m.len)),
        }
    }

    /// Asks the peer (MP_PRIO on the next pure ACK) to treat this subflow as backup or
    /// not; false on a plain subflow, which has no MPTCP options.
    pub(super) fn set_backup(&mut self, backup: bool) -> bool {
        if self.role == Role::Plain {
            return false;
        }
        self.backup = backup;
        self.prio_due = true;
        true
    }

    /// Marks the subflow's local address withdrawn (the stack resets it).
    pub(super) fn withdraw(&mut self) {
        self.withdrawn = true;
    }

    /// True when the subflow's local address was withdrawn.
    pub(super) fn withdrawn(&self) -> bool {
        self.withdrawn
    }

    /// Takes the DSN of a received MP_FAIL still to answer.
    pub(super) fn take_fail_rx(&mut self) -> Option<Dsn> {
        self.fail_rx.take()
    }

    /// Falls back by an infinite mapping for `dsn` on the segment at subflow sequence
    /// `at` (the first byte not yet handed to TCP): what precedes keeps its mappings,
    /// what follows is plain TCP.
    pub(super) fn start_infinite(&mut self, at: TcpSeq, dsn: Dsn) {
        self.role = Role::Plain;
        self.infinite_tx = Some((at, dsn));
        self.mp_fail = None;
    }

    /// Records a payload of `len` bytes handed to the subflow at `seq` for `dsn`
    /// (`reinjected`: the connection sends it again).
    pub(super) fn record_tx(
        &mut self,
        seq: TcpSeq,
        dsn: Dsn,
        p: &Payload<S>,
        csum: bool,
        reinjected: bool,
    ) -> bool {
        if self.tx.len() >= TX_MAPS {
            return false;
        }
        let len = p.len() as u32;
        let csum = csum.then(|| {
            let ssn = seq.offset_from(self.iss);
            dss_checksum(dsn, ssn, len as u16, checksum::sum(p.bytes()))
        });
        self.tx.push_back(TxMap {
            seq,
            dsn,
            len,
            csum,
            reinjected,
        });
        true
    }

    /// The sent mapping covering `seq`.
    fn tx_map(&self, seq: TcpSeq) -> Option<&TxMap> {
        let i = self.tx.partition_point(|m| (m.seq + m.len).before_eq(seq));
        self.tx.get(i).filter(|m| seq.after_eq(m.seq))
    }

    /// Resets the subflow with MP_TCPRST `reason`.
    fn reset(&mut self, reason: u8) -> Verdict {
        self.reset_reason = Some(reason);
        Verdict::Reset
    }

    /// The peer's SYN/ACK arrived (active).
    fn on_syn_ack(
        &mut self,
        ctx: &mut Ctx<S>,
        opts: &[MptcpOption],
        meta: &SegmentMeta,
    ) -> Verdict {
        let Some((msk, mib, cfg)) = ctx.split(self.msk) else {
            return Verdict::Reset;
        };
        match self.role {
            Role::Capable => {
                let key = opts.iter().find_map(|o| match o {
                    MptcpOption::MpCapable(MpCapable {
                        variant: MpcVariant::SynAck { sender_key },
                        checksum_required,
                        deny_join_id0,
                        ..
                    }) => Some((*sender_key, *checksum_required, *deny_join_id0)),
                    _ => None,
                });
                match key {
                    Some((key, csum, deny_join_id0))
                        if self.syns_sent <= cfg.syn_retrans_before_tcp_fallback + 1 =>
                    {
                        msk.set_remote_key(key);
                        msk.csum = cfg.checksum || csum;
                        msk.peer_deny_join_id0 = deny_join_id0;
                        msk.phase = Phase::Established;
                        // The peer's window until its first DATA_ACK says more.
                        msk.wnd_end = msk.snd_una + u64::from(meta.window);
                        self.stage = Stage::Established;
                        mib.inc(Mib::MPCapableSYNACKRX);
                    }
                    _ => {
                        msk.fall_back();
                        msk.phase = Phase::Established;
                        self.role = Role::Plain;
                        mib.inc(Mib::MPCapableFallbackSYNACK);
                    }
                }
                Verdict::Continue
            }
            Role::Join => {
                let synack = opts.iter().find_map(|o| match o {
                    MptcpOption::MpJoin(MpJoin::SynAck {
                        backup,
                        addr_id,
                        hmac,
                        nonce,
                    }) => Some((*backup, *addr_id, *hmac, *nonce)),
                    _ => None,
                });
                let Some((backup, addr_id, hmac, nonce)) = synack else {
                    return self.reset(reset_reason::MPTCP_ERROR);
                };
                mib.inc(Mib::MPJoinSynAckRx);
                let ok = msk
                    .keys
                    .as_ref()
                    .is_some_and(|k| k.verify_synack_hmac(self.local_nonce, nonce, hmac));
                if !ok {
                    mib.inc(Mib::MPJoinSynAckHMacFailure);
                    return self.reset(reset_reason::MPTCP_ERROR);
                }
                self.remote_nonce = nonce;
                self.stage = Stage::AwaitFourthAck;
                if let Some(e) = self.id.and_then(|id| msk.entry_mut(id)) {
                    e.backup = backup;
                    e.remote_id = addr_id;
                }
                Verdict::Continue
            }
            Role::Plain => Verdict::Continue,
        }
    }

    /// The ACK that completes a passive handshake.
    fn on_third_ack(
        &mut self,
        ctx: &mut Ctx<S>,
        opts: &[MptcpOption],
        meta: &SegmentMeta,
    ) -> Verdict {
        let mut announce = false;
        let v = self.on_third_ack_options(ctx, opts, meta, &mut announce);
        if announce {
            ctx.queue_announcements(self.msk);
        }
        v
    }

    fn on_third_ack_options(
        &mut self,
        ctx: &mut Ctx<S>,
        opts: &[MptcpOption],
        meta: &SegmentMeta,
        announce: &mut bool,
    ) -> Verdict {
        let id = self.id;
        let msk_id = self.msk;
        let Some((msk, mib, _)) = ctx.split(msk_id) else {
            return Verdict::Reset;
        };
        match self.role {
            Role::Capable => {
                let keys = opts.iter().find_map(|o| match o {
                    MptcpOption::MpCapable(c) => match c.variant {
                        MpcVariant::Ack {
                            sender_key,
                            receiver_key,
                        } => Some((sender_key, receiver_key, c.checksum_required, None)),
                        MpcVariant::AckData {
                            sender_key,
                            receiver_key,
                            data_len,
                            checksum,
                        } => Some((
                            sender_key,
                            receiver_key,
                            c.checksum_required,
                            Some((data_len, checksum)),
                        )),
                        _ => None,
                    },
                    _ => None,
                });
                let Some((sender_key, receiver_key, csum, data)) = keys else {
                    msk.fall_back();
                    msk.phase = Phase::Established;
                    self.role = Role::Plain;
                    mib.inc(Mib::MPCapableFallbackACK);
                    return Verdict::Continue;
                };
                if receiver_key != msk.local_key {
                    return self.reset(reset_reason::MPTCP_ERROR);
                }
                msk.set_remote_key(sender_key);
                msk.csum |= csum;
                msk.phase = Phase::Established;
                // The peer's window until its first DATA_ACK says more.
                msk.wnd_end = msk.snd_una + u64::from(meta.window);
                self.stage = Stage::Established;
                self.fully_established = true;
                mib.inc(Mib::MPCapableACKRX);
                *announce = true;
                if let (Some((len, csum)), Some(ack)) = (data, msk.data_ack()) {
                    if len > 0 {
                        self.add_rx_map(RxMap {
                            seq: meta.seq,
                            dsn: ack,
                            len: u32::from(len),
                            csum: csum.map(|c| (c, len)),
                        });
                    }
                }
                Verdict::Continue
            }
            Role::Join => {
                let hmac = opts.iter().find_map(|o| match o {
                    MptcpOption::MpJoin(MpJoin::Ack { hmac }) => Some(*hmac),
                    _ => None,
                });
                let Some(hmac) = hmac else {
                    return self.reset(reset_reason::MPTCP_ERROR);
                };
                mib.inc(Mib::MPJoinAckRx);
                let ok = msk
                    .keys
                    .as_ref()
                    .is_some_and(|k| k.verify_ack_hmac(self.local_nonce, self.remote_nonce, &hmac));
                if !ok {
                    mib.inc(Mib::MPJoinAckHMacFailure);
                    return self.reset(reset_reason::MPTCP_ERROR);
                }
                self.stage = Stage::Established;
                self.fully_established = true;
                msk.half_open_joins = msk.half_open_joins.saturating_sub(1);
                msk.joined = true;
                if let Some(e) = id.and_then(|id| msk.entry_mut(id)) {
                    e.established = true;
                }
                // The fourth ACK tells the joiner it may send.
                Verdict::AckNow
            }
            Role::Plain => Verdict::Continue,
        }
    }

    fn add_rx_map(&mut self, m: RxMap) {
        let i = self.rx.partition_point(|r| r.seq.before(m.seq));
        if self.rx.get(i).is_some_and(|r| r.seq == m.seq) {
            // A retransmission repeats its mapping; a different one for the same
            // bytes is caught when they are delivered.
            return;
        }
        if self.rx.len() >= RX_MAPS {
            if i == self.rx.len() {
                return;
            }
            self.rx.pop_back();
        }
        self.rx.insert(i, m);
    }

    /// The index of the received mapping covering `seq`.
    fn rx_map(&self, seq: TcpSeq) -> Option<usize> {
        let i = self.rx.partition_point(|r| r.end().before_eq(seq));
        self.rx.get(i).filter(|r| r.covers(seq)).map(|_| i)
    }

    /// Options of an established MPTCP subflow: DSS and signals.
    fn on_established_options(
        &mut self,
        ctx: &mut Ctx<S>,
        opts: &[MptcpOption],
        meta: &SegmentMeta,
    ) -> Verdict {
        let msk_id = self.msk;
        let id = self.id;
        let Some((msk, mib, cfg)) = ctx.split(msk_id) else {
            return Verdict::Reset;
        };
        let mut mapped = false;
        let mut verdict = Verdict::Continue;
        for o in opts {
            match *o {
                MptcpOption::Dss(dss) => {
                    self.fully_established = true;
                    if let Some(ack) = dss.data_ack {
                        let ack = ack.expand(msk.snd_una);
                        msk.on_data_ack(ack, meta.window);
                    }
                    let Some(m) = dss.mapping else { continue };
                    mapped = true;
                    let Some(rcv_nxt) = msk.data_ack() else {
                        continue;
                    };
                    if matches!(m.dsn, DsnField::Bits64(_)) {
                        msk.peer_dsn64 = true;
                    }
                    let dsn = m.dsn.expand(rcv_nxt);
                    if m.data_len == 0 {
                        // The infinite mapping: the peer fell back (answering our
                        // MP_FAIL, or on its own). We follow once the subflow bytes
                        // reach it; refused when fallback is no longer possible.
                        if self.infinite_rx.is_none() {
                            mib.inc(Mib::InfiniteMapRx);
                            if msk.infinite_fallback_allowed() {
                                self.infinite_rx = Some((self.irs + m.ssn, dsn));
                            }
                        }
                        continue;
                    }
                    let fin = u32::from(dss.data_fin);
                    let data_len = u32::from(m.data_len) - fin;
                    if dss.data_fin && meta.data_len == 0 && verdict == Verdict::Continue {
                        // A DATA_FIN on a pure ACK (or its retransmission) is
                        // DATA_ACKed by the end of the burst: Linux sends it on every
                        // subflow, and the subflow's FIN or our own DATA_FIN often
                        // follows in the same burst — one segment then answers all.
                        verdict = Verdict::AckBurst;
                    }
                    if dss.data_fin {
                        let fin_dsn = dsn + u64::from(data_len);
                        if let Some(r) = msk.rcv.as_mut() {
                            if r.set_fin(fin_dsn).is_err() {
                                mib.inc(Mib::DSSNotMatching);
                            }
                        }
                    }
                    if data_len > 0 {
                        self.add_rx_map(RxMap {
                            seq: self.irs + m.ssn,
                            dsn,
                            len: data_len,
                            csum: m.checksum.map(|c| (c, m.data_len)),
                        });
                    }
                }
                MptcpOption::MpCapable(MpCapable {
                    variant:
                        MpcVariant::AckData {
                            data_len, checksum, ..
                        },
                    ..
                }) if data_len > 0 => {
                    // The initiator's first data before it saw our DATA_ACK: DSN =
                    // its IDSN + 1 at subflow sequence 1.
                    mapped = true;
                    self.add_rx_map(RxMap {
                        seq: self.irs + 1,
                        dsn: msk.remote_idsn + 1,
                        len: u32::from(data_len),
                        csum: checksum.map(|c| (c, data_len)),
                    });
                }
                MptcpOption::MpFastclose { receiver_key } if receiver_key == msk.local_key => {
                    mib.inc(Mib::MPFastcloseRx);
                    msk.on_peer_fastclose();
                    verdict = Verdict::Reset;
                }
                MptcpOption::MpPrio { backup } => {
                    mib.inc(Mib::MPPrioRx);
                    if let Some(sf) = id {
                        if let Some(e) = msk.entry_mut(sf) {
                            e.backup = backup;
                        }
                        let _ = msk.notes.try_push(Note::Prio { sf });
                    }
                }
                MptcpOption::MpFail { dsn } => {
                    // Answered by the stack with an infinite mapping while fallback is
                    // possible; otherwise the sender resets the subflow itself.
                    mib.inc(Mib::MPFailRx);
                    if msk.infinite_fallback_allowed() && self.mp_fail.is_none() {
                        self.fail_rx = Some(dsn);
                        msk.sf_attention = true;
                    }
                }
                MptcpOption::AddAddr(a) => {
                    if a.is_echo() {
                        mib.inc(Mib::EchoAdd);
                        for ann in msk.announce.iter_mut() {
                            if ann.id == a.addr_id && ann.addr == a.addr {
                                ann.echoed = true;
                            }
                        }
                    } else if msk.keys.as_ref().is_some_and(|k| k.verify_add_addr(&a)) {
                        mib.inc(Mib::AddAddr);
                        let addr = std::net::SocketAddr::new(a.addr, a.port.unwrap_or(0));
                        let _ = msk.notes.try_push(Note::Announced {
                            id: a.addr_id,
                            addr,
                        });
                        msk.peer_announced(a.addr_id, addr, cfg.add_addr_accepted);
                        if !msk.echo_due.contains(&a.echo()) {
                            let _ = msk.echo_due.try_push(a.echo());
                        }
                    } else {
                        mib.inc(Mib::AddAddrDrop);
                    }
                }
                MptcpOption::RemoveAddr(r) => {
                    // Every subflow to a removed address goes, whichever subflow
                    // carried the option; the stack resets them when it settles.
                    mib.inc(Mib::RmAddr);
                    for &rid in r.ids() {
                        if !msk.removed_ids.contains(&rid) {
                            let _ = msk.removed_ids.try_push(rid);
                        }
                    }
                }
                _ => {}
            }
        }
        // Data without any mapping, or a segment without any MPTCP option (the peer
        // fell back, or a middlebox strips the options; an MPTCP peer puts a DSS on
        // every segment): fall back while the subflow's bytes are still the
        // connection's one to one (RFC 8684 §3.7; Linux `subflow_can_fallback`: one
        // subflow, no join, no reinjection, and with checksums none verified yet,
        // which a DATA_ACK stands for here).
        let stripped = if meta.data_len > 0 {
            !mapped && self.rx_map(meta.seq).is_none()
        } else {
            opts.is_empty() && self.role == Role::Capable
        };
        // Not while an MP_FAIL awaits its infinite mapping: the peer, fallen back
        // already, sends without options, but its bytes before that mapping are mapped.
        if stripped
            && (!msk.csum || !msk.data_ack_seen)
            && msk.infinite_fallback_allowed()
            && self.mp_fail.is_none()
            && self.infinite_rx.is_none()
        {
            msk.fall_back();
            self.role = Role::Plain;
            mib.inc(Mib::DssFallback);
        }
        ctx.mark(msk_id);
        verdict
    }

    /// Hands `p` (starting at subflow sequence `seq`) to the connection by its mappings.
    fn deliver(&mut self, ctx: &mut Ctx<S>, mut seq: TcpSeq, p: Payload<S>) -> Delivery<S> {
        let msk_id = self.msk;
        let mut rest = Some(p);
        while let Some(mut p) = rest.take() {
            // Bytes before the peer's infinite mapping keep their mappings; from it on
            // the subflow is plain TCP.
            let mut limit = p.len() as u32;
            if let Some((at, dsn)) = self.infinite_rx {
                if seq.after_eq(at) {
                    self.finish_fallback(ctx, at, dsn);
                    return self.deliver_plain(ctx, seq, p);
                }
                limit = limit.min(at.offset_from(seq));
            }
            let Some(i) = self.rx_map(seq) else {
                ctx.mib.inc(Mib::DSSNoMatchTCP);
                self.reset_reason = Some(reset_reason::MPTCP_ERROR);
                return Delivery::Reset;
            };
            let m = self.rx[i];
            let off = seq.offset_from(m.seq);
            let take = (m.len - off).min(limit);
            let piece = if (take as usize) < p.len() {
                let front = p.split_to(take as usize);
                rest = Some(p);
                front
            } else {
                p
            };
            let dsn = m.dsn + u64::from(off);
            seq += take;
            if seq == m.end() {
                self.rx.remove(i);
            }
            // Mappings wholly behind the delivery point are stale retransmissions.
            while self.rx.front().is_some_and(|r| r.end().before_eq(seq)) {
                self.rx.pop_front();
            }
            if m.csum.is_some() {
                if !self.collect_checksummed(ctx, m, off, dsn, piece) {
                    ctx.mib.inc(Mib::DataCsumErr);
                    self.pending = None;
                    if self.mp_fail.is_none() {
                        self.mp_fail = Some(FailTx {
                            dsn: m.dsn,
                            sent: false,
                        });
                    }
                    // RFC 8684 §3.7: the mapping's data is not delivered. On the only
                    // subflow, MP_FAIL asks the peer for an infinite mapping from its
                    // DSN; otherwise the subflow is reset (MP_FAIL in the RST) and the
                    // data comes again on another one.
                    if !ctx
                        .msk(msk_id)
                        .is_some_and(|k| k.infinite_fallback_allowed())
                    {
                        self.reset_reason = Some(reset_reason::MIDDLEBOX);
                        return Delivery::Reset;
                    }
                    ctx.mark(msk_id);
                }
            } else {
                push_data(ctx, msk_id, dsn, piece);
            }
        }
        Delivery::Taken
    }

    /// Falls back at the peer's infinite mapping (subflow sequence `at` carries `dsn`):
    /// plain TCP from here on.
    fn finish_fallback(&mut self, ctx: &mut Ctx<S>, at: TcpSeq, dsn: Dsn) {
        self.plain_at = Some((at, dsn));
        self.role = Role::Plain;
        self.rx.clear();
        self.pending = None;
        self.mp_fail = None;
        self.infinite_rx = None;
        if let Some(k) = ctx.msk_mut(self.msk) {
            k.fall_back();
        }
        ctx.mark(self.msk);
    }

    /// Hands in-order plain TCP bytes at `seq` to the connection: after the peer's
    /// infinite mapping by the DSN it named, otherwise at the connection's DATA_ACK (one
    /// subflow whose bytes always were the connection's, in order).
    fn deliver_plain(&mut self, ctx: &mut Ctx<S>, seq: TcpSeq, p: Payload<S>) -> Delivery<S> {
        let dsn = match self.plain_at {
            Some((at, dsn)) => {
                let dsn = dsn + u64::from(seq.offset_from(at));
                // Re-anchored at every payload so the offset never wraps.
                self.plain_at = Some((seq + p.len() as u32, dsn + p.len() as u64));
                dsn
            }
            None => match ctx.msk(self.msk).and_then(|m| m.data_ack()) {
                Some(dsn) => dsn,
                None => return Delivery::Reset,
            },
        };
        push_data(ctx, self.msk, dsn, p);
        Delivery::Taken
    }

    /// Adds a piece of a checksummed mapping; once the mapping is complete, verifies
    /// it and hands its pieces over. False on a checksum failure.
    fn collect_checksummed(
        &mut self,
        ctx: &mut Ctx<S>,
        m: RxMap,
        off: u32,
        dsn: Dsn,
        piece: Payload<S>,
    ) -> bool {
        let fresh = self.pending.as_ref().is_none_or(|c| c.map != m);
        if fresh {
            self.pending = Some(CsumPending {
                map: m,
                pieces: Vec::new(),
                sum: 0,
                got: 0,
            });
        }
        let Some(c) = self.pending.as_mut() else {
            return false;
        };
        if off != c.got || c.pieces.len() >= CSUM_PIECES {
            return false;
        }
        let mut s = checksum::sum(piece.bytes());
        if off % 2 == 1 {
            // A piece starting at an odd offset adds its bytes in swapped lanes.
            s = s.swap_bytes();
        }
        c.sum = checksum::combine(c.sum, s);
        c.got += piece.len() as u32;
        c.pieces.push((dsn, piece));
        if c.got < m.len {
            return true;
        }
        let Some(c) = self.pending.take() else {
            return false;
        };
        let ssn = m.seq.offset_from(self.irs);
        let ok = m
            .csum
            .is_some_and(|(received, dll)| dss_checksum_ok(m.dsn, ssn, dll, received, c.sum));
        if ok {
            for (dsn, p) in c.pieces {
                push_data(ctx, self.msk, dsn, p);
            }
        }
        ok
    }

    /// Pushes the handshake option of a SYN we send.
    fn syn_option(&mut self, ctx: &mut Ctx<S>, opts: &mut OptionsBuf) {
        let Some((msk, mib, cfg)) = ctx.split(self.msk) else {
            return;
        };
        let opt = match self.role {
            Role::Capable => {
                self.syns_sent = self.syns_sent.saturating_add(1);
                if self.syns_sent > cfg.syn_retrans_before_tcp_fallback + 1 {
                    if self.syns_sent == cfg.syn_retrans_before_tcp_fallback + 2 {
                        mib.inc(Mib::MPCapableSYNTXDrop);
                    }
                    return;
                }
                mib.inc(Mib::MPCapableSYNTX);
                MptcpOption::MpCapable(MpCapable::new(
                    MpcVariant::Syn,
                    cfg.checksum,
                    !cfg.allow_join_initial_addr_port,
                ))
            }
            Role::Join => {
                mib.inc(Mib::MPJoinSynTx);
                MptcpOption::MpJoin(MpJoin::Syn {
                    backup: self.backup,
                    addr_id: self.local_id,
                    token: msk.remote_token,
                    nonce: self.local_nonce,
                })
            }
            Role::Plain => return,
        };
        let _ = opts.push_mptcp(&opt);
    }

    /// Pushes the handshake option of a SYN/ACK we send.
    fn syn_ack_option(&self, ctx: &Ctx<S>, opts: &mut OptionsBuf) {
        let Some(msk) = ctx.msk(self.msk) else { return };
        let opt = match self.role {
            Role::Capable => MptcpOption::MpCapable(MpCapable::new(
                MpcVariant::SynAck {
                    sender_key: msk.local_key,
                },
                msk.csum,
                !ctx.cfg.allow_join_initial_addr_port,
            )),
            Role::Join => {
                let Some(keys) = msk.keys.as_ref() else {
                    return;
                };
                MptcpOption::MpJoin(MpJoin::SynAck {
                    backup: self.backup,
                    addr_id: self.local_id,
                    hmac: keys.synack_hmac(self.local_nonce, self.remote_nonce),
                    nonce: self.local_nonce,
                })
            }
            Role::Plain => return,
        };
        let _ = opts.push_mptcp(&opt);
    }

    /// Pushes the options of an ACK-bearing segment after the handshake.
    /// The options of an established subflow's segment; true when they carry a
    /// DATA_ACK.
    fn established_option(&self, ctx: &Ctx<S>, opts: &mut OptionsBuf, meta: &SegmentMeta) -> bool {
        let Some(msk) = ctx.msk(self.msk) else {
            return false;
        };
        if let Some((at, dsn)) = self.infinite_tx {
            self.infinite_option(msk, opts, meta, at, dsn);
            return false;
        }
        if self.role == Role::Plain || msk.fallback {
            return false;
        }
        let map = (meta.data_len > 0)
            .then(|| self.tx_map(meta.seq))
            .flatten()
            .copied();
        if self.stage == Stage::AwaitFourthAck {
            let Some(keys) = msk.keys.as_ref() else {
                return false;
            };
            let hmac = keys.ack_hmac(self.local_nonce, self.remote_nonce);
            let _ = opts.push_mptcp(&MptcpOption::MpJoin(MpJoin::Ack { hmac }));
            return false;
        }
        if self.stage != Stage::Established {
            return false;
        }
        if self.role == Role::Capable && !self.fully_established {
            // Until the peer shows it has our keys, repeat them: on the first data as
            // MP_CAPABLE with data, on ACKs as the third-ACK form.
            let first_data = map.filter(|m| m.dsn == msk.local_idsn + 1);
            let variant = match first_data {
                Some(m) => MpcVariant::AckData {
                    sender_key: msk.local_key,
                    receiver_key: msk.remote_key,
                    data_len: m.len as u16,
                    checksum: m.csum,
                },
                None if meta.data_len == 0 => MpcVariant::Ack {
                    sender_key: msk.local_key,
                    receiver_key: msk.remote_key,
                },
                None => return self.push_dss(msk, opts, map, meta),
            };
            let _ = opts.push_mptcp(&MptcpOption::MpCapable(MpCapable::new(
                variant, msk.csum, false,
            )));
            return false;
        }
        self.push_dss(msk, opts, map, meta)
    }

    /// The options of a segment after we fell back by an infinite mapping at subflow
    /// sequence `at` for `dsn`: segments before it keep their mappings, the one at it
    /// carries the infinite mapping (data-level length 0, checksum 0), later ones none.
    fn infinite_option(
        &self,
        msk: &super::msk::Msk<S>,
        opts: &mut OptionsBuf,
        meta: &SegmentMeta,
        at: TcpSeq,
        dsn: Dsn,
    ) {
        if meta.data_len == 0 || meta.seq.after(at) {
            return;
        }
        if meta.seq.before(at) {
            let map = self.tx_map(meta.seq).copied();
            // Falling back: TCP's own window from here on.
            let _ = self.push_dss(msk, opts, map, meta);
            return;
        }
        let dss = Dss {
            data_ack: msk
                .data_ack()
                .map(|a| DsnField::data_ack(a, msk.peer_dsn64)),
            mapping: Some(Mapping::new(
                dsn,
                at.offset_from(self.iss),
                0,
                msk.csum.then_some(0),
            )),
            data_fin: false,
        };
        let _ = opts.push_mptcp(&MptcpOption::Dss(dss));
    }

    /// MP_FAIL while it is owed (after the DSS, which it may share a segment with):
    /// until the peer's infinite mapping arrives, or the failed data came again some
    /// other way (the peer could not fall back and reinjected it).
    fn fail_option(&mut self, ctx: &mut Ctx<S>, opts: &mut OptionsBuf) {
        let Some(fail) = self.mp_fail.as_mut() else {
            return;
        };
        let recovered = ctx
            .msk(self.msk)
            .and_then(|k| k.data_ack())
            .is_some_and(|a| a.after(fail.dsn));
        if recovered {
            self.mp_fail = None;
            return;
        }
        if opts
            .push_mptcp(&MptcpOption::MpFail { dsn: fail.dsn })
            .is_ok()
            && !fail.sent
        {
            fail.sent = true;
            ctx.mib.inc(Mib::MPFailTx);
        }
    }

    /// On a pure ACK: an MP_PRIO that is due, if it fits.
    fn prio_option(&mut self, ctx: &mut Ctx<S>, opts: &mut OptionsBuf, meta: &SegmentMeta) {
        if !self.prio_due || meta.data_len > 0 || self.stage != Stage::Established {
            return;
        }
        let opt = MptcpOption::MpPrio {
            backup: self.backup,
        };
        if opts.push_mptcp(&opt).is_ok() {
            self.prio_due = false;
            ctx.mib.inc(Mib::MPPrioTx);
        }
    }

    /// On a pure ACK: a REMOVE_ADDR, an ADD_ADDR that is due, or an echo we owe, if it
    /// fits.
    fn signal_option(&self, ctx: &mut Ctx<S>, opts: &mut OptionsBuf, meta: &SegmentMeta) {
        if meta.data_len > 0 || self.role == Role::Plain || self.stage != Stage::Established {
            return;
        }
        let now = ctx.now;
        let timeout = ctx.cfg.add_addr_timeout;
        let Some((msk, mib, _)) = ctx.split(self.msk) else {
            return;
        };
        if msk.fallback || self.withdrawn {
            return;
        }
        if !msk.rm_due.is_empty() {
            let Some(rm) = RemoveAddr::new(&msk.rm_due) else {
                msk.rm_due.clear();
                return;
            };
            if opts.push_mptcp(&MptcpOption::RemoveAddr(rm)).is_ok() {
                msk.rm_due.clear();
                mib.inc(Mib::RmAddrTx);
            }
            return;
        }
        if let Some(i) = msk.announce_due(now, timeout) {
            let Some(keys) = msk.keys.as_ref() else {
                return;
            };
            let a = msk.announce[i];
            let opt = AddAddr {
                addr_id: a.id,
                addr: a.addr,
                port: None,
                hmac: Some(keys.add_addr_hmac(a.id, a.addr, None)),
            };
            if opts.push_mptcp(&MptcpOption::AddAddr(opt)).is_ok() {
                msk.announce[i].sent_at = Some(now);
                mib.inc(Mib::AddAddrTx);
            }
            return;
        }
        if let Some(echo) = msk.echo_due.first().copied() {
            if opts.push_mptcp(&MptcpOption::AddAddr(echo)).is_ok() {
                msk.echo_due.remove(0);
            }
        }
    }

    /// Adds the DSS; true when it carries a DATA_ACK.
    fn push_dss(
        &self,
        msk: &super::msk::Msk<S>,
        opts: &mut OptionsBuf,
        map: Option<TxMap>,
        meta: &SegmentMeta,
    ) -> bool {
        let data_ack = msk
            .data_ack()
            .map(|a| DsnField::data_ack(a, msk.peer_dsn64));
        let dss = match (map, msk.fin) {
            (Some(m), fin) => {
                // The mapping that ends where our DATA_FIN is carries it (Linux: one
                // more byte of data-level length, and the checksum over that length).
                let data_fin =
                    m.len < u32::from(u16::MAX) && fin == SendFin::Sent(m.dsn + u64::from(m.len));
                let csum = m.csum.map(|c| {
                    if data_fin {
                        !checksum::combine(!c, 1)
                    } else {
                        c
                    }
                });
                Dss {
                    data_ack,
                    mapping: Some(Mapping::new(
                        m.dsn,
                        m.seq.offset_from(self.iss),
                        (m.len + u32::from(data_fin)) as u16,
                        csum,
                    )),
                    data_fin,
                }
            }
            (None, SendFin::Sent(fin)) if meta.data_len == 0 => {
                let csum = msk.csum.then(|| dss_checksum(fin, 0, 1, 0));
                Dss::data_fin_only(fin, data_ack, csum)
            }
            (None, _) => match data_ack {
                Some(a) => Dss::ack(a),
                None => return false,
            },
        };
        opts.push_mptcp(&MptcpOption::Dss(dss)).is_ok() && dss.data_ack.is_some()
    }

    /// The DSN a plain-TCP subflow's acknowledgement `ack` stands for.
    fn plain_data_ack(&self, ack: TcpSeq) -> Option<Dsn> {
        // After an infinite mapping only what follows it counts: the mappings before
        // it name DSNs sent again from its point.
        let from = match self.infinite_tx {
            Some((at, _)) if ack.before_eq(at) => return None,
            Some((at, _)) => Some(at),
            None => None,
        };
        let i = self.tx.partition_point(|m| {
            from.is_some_and(|at| m.seq.before(at)) || (m.seq + m.len).before_eq(ack)
        });
        match self.tx.get(i) {
            Some(m) if ack.after(m.seq) => Some(m.dsn + u64::from(ack.offset_from(m.seq))),
            Some(m) => Some(m.dsn),
            None => self.tx.back().map(|m| m.dsn + u64::from(m.len)),
        }
    }

    /// Drops sent mappings the subflow acknowledged up to `ack`.
    fn prune_tx(&mut self, ack: TcpSeq) {
        while self
            .tx
            .front()
            .is_some_and(|m| (m.seq + m.len).before_eq(ack))
        {
            self.tx.pop_front();
        }
    }
}

/// Hands `p` at `dsn` to the connection's reassembly.
fn push_data<S: SharedBuf>(ctx: &mut Ctx<S>, msk: MskId, dsn: Dsn, p: Payload<S>) {
    let shedding = ctx.shedding;
    let Some(m) = ctx.msk_mut(msk) else { return };
    m.data_taken = true;
    let Some(r) = m.rcv.as_mut() else { return };
    let before = r.rcv_nxt();
    if shedding && dsn.after(before) {
        // Severe memory pressure: no out-of-order data (the peer sends it again).
        ctx.mib.inc(Mib::RcvPruned);
        return;
    }
    let holes_before = r.stats().too_many_holes;
    let res = r.push(dsn, p);
    let pruned = r.stats().too_many_holes != holes_before;
    let ooo = res.stored > 0 && !res.advanced && dsn.after(before);
    if res.advanced {
        m.notify(Events::READABLE);
    }
    let dup = res.stored == 0 && res.duplicate > 0;
    let beyond = res.dropped > 0 && !pruned;
    for (hit, mib) in [
        (ooo, Mib::OFOQueue),
        (dup, Mib::DuplicateData),
        (beyond, Mib::NoDSSInWindow),
        (pruned, Mib::RcvPruned),
    ] {
        if hit {
            ctx.mib.inc(mib);
        }
    }
    ctx.mark(msk);
}

/// The MPTCP options of a segment, decoded; malformed ones are counted and skipped.
fn mptcp_options<S: SharedBuf>(ctx: &mut Ctx<S>, raw: &[u8]) -> ArrayVec<MptcpOption, 4> {
    let mut out = ArrayVec::new();
    for o in TcpOptions::new(raw) {
        match o {
            Ok(TcpOption::Mptcp(bytes)) => match MptcpOption::parse(bytes) {
                Ok(opt) => {
                    let _ = out.try_push(opt);
                }
                Err(_) => ctx.bad_options += 1,
            },
            Ok(_) => {}
            Err(_) => break,
        }
    }
    out
}

impl<S: SharedBuf> Hook<S> for Subflow<S> {
    type Ctx = Ctx<S>;

    /// MP_JOIN SYNs: a peer joins an announced address on the port it first
    /// connected to (RFC 8684 §3.4.1), where no listener may be; the token decides.
    fn claims_unlistened(syn: &SegmentIn<S>) -> bool {
        TcpOptions::new(&syn.raw_options).any(|o| {
            matches!(o, Ok(TcpOption::Mptcp(b))
                if matches!(MptcpOption::parse(b), Ok(MptcpOption::MpJoin(MpJoin::Syn { .. }))))
        })
    }

    fn accept(ctx: &mut Ctx<S>, tuple: &FourTuple, syn: &SegmentIn<S>) -> Result<Self, OptionsBuf> {
        let opts = mptcp_options(ctx, &syn.raw_options);
        ctx.accept(tuple, &opts).map(|(msk, kind)| {
            let mut sf = match kind {
                super::stack::Accepted::Capable => {
                    Self::new(msk, Role::Capable, Stage::SynReceived)
                }
                super::stack::Accepted::Plain => {
                    let fit = ctx.cfg.fit_listeners.contains(&tuple.local)
                        || matches!(ctx.addressed, Addressed::Transparent(_));
                    Self::plain(msk, if fit { ctx.cfg.plain_mss_reserve } else { 0 })
                }
                super::stack::Accepted::Join {
                    remote_nonce,
                    local_nonce,
                    local_id,
                    remote_id,
                    backup,
                } => Subflow {
                    remote_nonce,
                    local_nonce,
                    local_id,
                    remote_id,
                    peer_backup: backup,
                    ..Self::new(msk, Role::Join, Stage::SynReceived)
                },
            };
            sf.irs = syn.seq;
            sf
        })
    }

    fn accept_cookie(
        ctx: &mut Ctx<S>,
        tuple: &FourTuple,
        _ack: &SegmentIn<S>,
    ) -> Result<Self, OptionsBuf> {
        ctx.accept(tuple, &[]).map(|(msk, _)| {
            let mut sf = Self::new(msk, Role::Plain, Stage::Established);
            sf.irs = _ack.seq - 1;
            sf
        })
    }

    fn attach(&mut self, ctx: &mut Ctx<S>, id: ConnId) {
        self.id = Some(id);
        let join = self.role == Role::Join;
        if let Some(msk) = ctx.msk_mut(self.msk) {
            let entry = SfEntry::new(id, join, self.peer_backup, self.remote_id);
            // Room was checked when the subflow was admitted.
            let _ = msk.subflows.try_push(entry);
            msk.offered = None;
        }
    }

    fn release(&mut self, ctx: &mut Ctx<S>) {
        let half_open = self.role == Role::Join && self.stage != Stage::Established;
        let Some(id) = self.id else { return };
        ctx.subflow_gone(self.msk, id, half_open, !self.tx.is_empty());
    }

    fn mss_reserve(&self) -> u16 {
        self.mss_reserve
    }

    fn option_space(&self, data: bool) -> usize {
        match (self.role, data) {
            // Until the infinite mapping is through, earlier segments keep their DSS.
            (Role::Plain, true) if self.infinite_tx.is_some() => DATA_OPTION_SPACE,
            (Role::Plain, _) => 0,
            (_, true) => DATA_OPTION_SPACE,
            (_, false) if self.mp_fail.is_some() => ACK_OPTION_SPACE + MP_FAIL_SPACE,
            (_, false) => ACK_OPTION_SPACE,
        }
    }

    fn add_options(&mut self, ctx: &mut Ctx<S>, opts: &mut OptionsBuf, meta: &SegmentMeta) {
        let f = meta.flags;
        if f.contains(TcpFlags::RST) {
            // Linux's order: MP_FASTCLOSE or MP_FAIL, then MP_TCPRST, which goes on
            // every RST of an MPTCP subflow (reason 0 when nothing more specific).
            if let Some(key) = ctx.fastclose_key(self.msk) {
                ctx.mib.inc(Mib::MPFastcloseTx);
                let _ = opts.push_mptcp(&MptcpOption::MpFastclose { receiver_key: key });
            } else if let Some(fail) = self.mp_fail {
                if opts
                    .push_mptcp(&MptcpOption::MpFail { dsn: fail.dsn })
                    .is_ok()
                    && !fail.sent
                {
                    ctx.mib.inc(Mib::MPFailTx);
                }
            }
            if self.role != Role::Plain || self.reset_reason.is_some() {
                let reason = self.reset_reason.unwrap_or(reset_reason::UNSPECIFIED);
                if opts
                    .push_mptcp(&MptcpOption::MpTcpRst { flags: 0, reason })
                    .is_ok()
                {
                    ctx.mib.inc(Mib::MPRstTx);
                }
            }
            return;
        }
        if f.contains(TcpFlags::SYN) {
            self.iss = meta.seq;
            if f.contains(TcpFlags::ACK) {
                self.syn_ack_option(ctx, opts);
            } else {
                self.syn_option(ctx, opts);
            }
            return;
        }
        if self.established_option(ctx, opts, meta) {
            // The peer may send up to this DATA_ACK plus the window TCP advertises on
            // this subflow (which never shrinks at the TCP level): Linux's
            // `rcv_wnd_sent`.
            if let Some(m) = ctx.msk_mut(self.msk) {
                m.advertised(meta.window);
            }
        }
        if self.role != Role::Plain && self.stage == Stage::Established {
            self.fail_option(ctx, opts);
            self.prio_option(ctx, opts, meta);
        }
        self.signal_option(ctx, opts, meta);
    }

    fn path_tx(&self, ctx: &Ctx<S>, meta: &SegmentMeta, retransmit: bool) -> PathTx {
        let Some(msk) = ctx.msk(self.msk).filter(|m| !m.fallback) else {
            return PathTx::None;
        };
        if self.role == Role::Plain {
            PathTx::None
        } else if retransmit {
            PathTx::Retransmitted
        } else if msk.reinjected_bytes > 0 && self.tx_map(meta.seq).is_some_and(|m| m.reinjected) {
            // Only a connection that reinjected has its mappings looked up.
            PathTx::Reinjected
        } else {
            PathTx::New
        }
    }

    fn on_options(&mut self, ctx: &mut Ctx<S>, raw: &[u8], meta: &SegmentMeta) -> Verdict {
        let f = meta.flags;
        if f.contains(TcpFlags::SYN) && !f.contains(TcpFlags::ACK) {
            // The peer's SYN (passive): `accept` already read its options.
            self.irs = meta.seq;
            return Verdict::Continue;
        }
        let opts = mptcp_options(ctx, raw);
        if f.contains(TcpFlags::SYN) {
            self.irs = meta.seq;
            return self.on_syn_ack(ctx, &opts, meta);
        }
        if self.role == Role::Plain {
            // Plain TCP: the subflow's ACK is the data-level ACK.
            if let Some(ack) = self.plain_data_ack(meta.ack) {
                if let Some(msk) = ctx.msk_mut(self.msk) {
                    msk.on_data_ack(ack, meta.window);
                }
                ctx.mark(self.msk);
            }
        }
        self.prune_tx(meta.ack);
        if self.infinite_tx.is_some_and(|(at, _)| meta.ack.after(at)) {
            // The peer has the infinite mapping: nothing before it is sent again.
            self.infinite_tx = None;
        }
        let verdict = match self.stage {
            Stage::SynReceived => {
                let v = self.on_third_ack(ctx, &opts, meta);
                if v == Verdict::Reset {
                    return v;
                }
                if self.role != Role::Plain && self.stage == Stage::Established {
                    // The third ACK may also carry a DSS (data-on-third-ACK forms).
                    let w = self.on_established_options(ctx, &opts, meta);
                    if w == Verdict::Reset {
                        return w;
                    }
                }
                v
            }
            Stage::AwaitFourthAck => {
                // Any ACK from the listener after our third ACK is the fourth ACK.
                self.stage = Stage::Established;
                if let Some(msk) = ctx.msk_mut(self.msk) {
                    msk.joined = true;
                    if let Some(e) = self.id.and_then(|id| msk.entry_mut(id)) {
                        e.established = true;
                    }
                }
                self.on_established_options(ctx, &opts, meta)
            }
            Stage::Established if self.role != Role::Plain => {
                self.on_established_options(ctx, &opts, meta)
            }
            _ => Verdict::Continue,
        };
        verdict
    }

    /// MP_TCPRST and MP_FAIL are counted; MP_FASTCLOSE with our key closes the whole
    /// connection (RFC 8684 §3.5: it may come on the RST itself, as Linux sends it).
    fn on_reset(&mut self, ctx: &mut Ctx<S>, raw: &[u8]) {
        if self.role == Role::Plain {
            return;
        }
        let opts = mptcp_options(ctx, raw);
        let Some((msk, mib, _)) = ctx.split(self.msk) else {
            return;
        };
        for o in &opts {
            match *o {
                MptcpOption::MpTcpRst { .. } => mib.inc(Mib::MPRstRx),
                // The subflow goes; its data is reinjected on the others.
                MptcpOption::MpFail { .. } => mib.inc(Mib::MPFailRx),
                // Linux sends MP_FASTCLOSE in a RST on every subflow.
                MptcpOption::MpFastclose { receiver_key }
                    if receiver_key == msk.local_key && msk.keys.is_some() =>
                {
                    mib.inc(Mib::MPFastcloseRx);
                    msk.on_peer_fastclose();
                }
                _ => {}
            }
        }
        ctx.mark(self.msk);
    }

    fn on_data(&mut self, ctx: &mut Ctx<S>, seq: TcpSeq, payload: Payload<S>) -> Delivery<S> {
        let fallback = self.role == Role::Plain || ctx.msk(self.msk).is_none_or(|m| m.fallback);
        if fallback {
            return self.deliver_plain(ctx, seq, payload);
        }
        ctx.received += payload.len() as u64;
        self.deliver(ctx, seq, payload)
    }

    fn cc_increase(&mut self, ctx: &mut Ctx<S>, view: &CcView, acked: u32) -> Option<u32> {
        ctx.coupled_increase(self.msk, self.id?, view, acked)
    }
}
