#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Scripted exchanges with an MPTCP stack: segments in, the exact options out. A
//! well-behaved peer stack drives the handshakes; the script then forges what a hostile
//! or broken peer sends (unknown token, wrong HMACs) and checks the stack's answer:
//! a RST with MP_TCPRST, the MIB counter, nothing allocated, the rest unharmed.

use dataplane::mptcp::crypto::KeySource;
use dataplane::mptcp::mib::Mib;
use dataplane::mptcp::msk::{MskId, Phase};
use dataplane::mptcp::stack::{Config, JoinPath, Stack};
use dataplane::port::SharedBuf;
use dataplane::seq::TcpSeq;
use dataplane::tcp::{
    Events, FourTuple, Instant, Secrets, SegOptions, SegmentIn, SegmentOut, TableConfig,
};
use dataplane::wire::mptcp::{reset_reason, MpCapable, MpJoin, MpcVariant, MptcpOption};
use dataplane::wire::tcp::{OptionsBuf, TcpFlags, TcpOption, TcpOptions};
use std::net::SocketAddr;

#[derive(Clone, Copy)]
struct NoBuf;

impl SharedBuf for NoBuf {
    fn data(&self) -> &[u8] {
        &[]
    }

    fn refcount(&self) -> u16 {
        1
    }
}

type Out = Vec<(FourTuple, SegmentOut<NoBuf>)>;

fn stack(seed: u8) -> Stack<NoBuf> {
    Stack::new(
        TableConfig::default(),
        Secrets::new([seed; 32]),
        Config::default(),
        KeySource::from_seed([seed; 32]),
        (0, 1),
        Instant::default(),
    )
}

fn server_addr() -> SocketAddr {
    "198.51.100.1:80".parse().unwrap()
}

/// A join from the client's second address, port `port`, with address id 1.
fn join_path(port: u16) -> JoinPath {
    JoinPath {
        local: SocketAddr::new([192, 0, 2, 2].into(), port),
        remote: server_addr(),
        local_id: 1,
        backup: false,
    }
}

fn now() -> Instant {
    Instant::from_nanos(1_000_000)
}

/// The segment as the peer receives it.
fn received(seg: &SegmentOut<NoBuf>) -> SegmentIn<NoBuf> {
    let mut s = SegmentIn::bare(seg.seq, seg.ack, seg.flags, seg.window);
    s.raw_options.extend(seg.options.as_bytes().iter().copied());
    s.options = SegOptions::parse(&s.raw_options);
    s
}

fn flipped(t: &FourTuple) -> FourTuple {
    FourTuple {
        local: t.remote,
        remote: t.local,
    }
}

/// The MPTCP options of a segment.
fn mptcp(seg: &SegmentOut<NoBuf>) -> Vec<MptcpOption> {
    TcpOptions::new(seg.options.as_bytes())
        .filter_map(|o| match o {
            Ok(TcpOption::Mptcp(b)) => MptcpOption::parse(b).ok(),
            _ => None,
        })
        .collect()
}

/// A client and a listener with one established MPTCP connection between them.
struct Pair {
    client: Stack<NoBuf>,
    server: Stack<NoBuf>,
    /// The connection at the client.
    m: MskId,
    /// The same connection at the listener.
    sm: Option<MskId>,
    /// The last segment the client sent on the initial subflow.
    last_initial: Option<(FourTuple, SegmentOut<NoBuf>)>,
}

impl Pair {
    fn new() -> Self {
        let mut client = stack(1);
        let mut server = stack(2);
        server.listen(server_addr());
        let mut to_s = Out::new();
        let m = client
            .connect(
                "192.0.2.1:40000".parse().unwrap(),
                server_addr(),
                now(),
                &mut to_s,
            )
            .unwrap();
        let mut p = Pair {
            client,
            server,
            m,
            sm: None,
            last_initial: None,
        };
        p.exchange(to_s);
        assert_eq!(p.client.info(m).unwrap().phase, Phase::Established);
        assert!(!p.client.info(m).unwrap().fallback);
        p
    }

    /// Delivers `to_server` and everything it causes, both ways.
    fn exchange(&mut self, mut to_s: Out) {
        let mut to_c = Out::new();
        while !to_s.is_empty() || !to_c.is_empty() {
            for (t, seg) in std::mem::take(&mut to_s) {
                self.server
                    .on_segment(flipped(&t), received(&seg), now(), &mut to_c);
                if t.local.port() == 40000 {
                    self.last_initial = Some((t, seg));
                }
            }
            for (t, seg) in std::mem::take(&mut to_c) {
                self.client
                    .on_segment(flipped(&t), received(&seg), now(), &mut to_s);
            }
        }
        while let Some(m) = self.client.next_ready() {
            let _: Events = self.client.take_events(m);
        }
        while let Some(m) = self.server.next_ready() {
            if self.server.take_events(m).contains(Events::CONNECTED) {
                self.sm = Some(m);
            }
        }
    }
}

/// A SYN from `from` to the listener carrying `opt`.
fn syn_with(opt: MptcpOption, from: &str) -> (FourTuple, SegmentIn<NoBuf>) {
    let mut o = OptionsBuf::new();
    o.push_mss(1460).unwrap();
    o.push_mptcp(&opt).unwrap();
    let seg = SegmentOut {
        seq: TcpSeq::new(1000),
        ack: TcpSeq::new(0),
        flags: TcpFlags::SYN,
        window: 65535,
        options: o,
        payload: None,
    };
    let tuple = FourTuple {
        local: server_addr(),
        remote: from.parse().unwrap(),
    };
    (tuple, received(&seg))
}

fn reset_reason_of(seg: &SegmentOut<NoBuf>) -> Option<u8> {
    mptcp(seg).into_iter().find_map(|o| match o {
        MptcpOption::MpTcpRst { reason, .. } => Some(reason),
        _ => None,
    })
}

#[test]
fn the_listener_answers_mp_capable_with_its_key() {
    let mut server = stack(2);
    server.listen(server_addr());
    let (t, syn) = syn_with(
        MptcpOption::MpCapable(MpCapable::new(MpcVariant::Syn, false, false)),
        "192.0.2.1:40000",
    );
    let mut out = Out::new();
    server.on_segment(t, syn, now(), &mut out);
    assert_eq!(out.len(), 1);
    let (_, synack) = &out[0];
    assert_eq!(synack.flags, TcpFlags::SYN | TcpFlags::ACK);
    let opts = mptcp(synack);
    assert!(
        matches!(
            opts.as_slice(),
            [MptcpOption::MpCapable(MpCapable {
                version: 1,
                checksum_required: false,
                variant: MpcVariant::SynAck { sender_key },
                ..
            })] if *sender_key != 0
        ),
        "{opts:?}"
    );
    assert_eq!(server.mib().get(Mib::MPCapableSYNRX), 1);
}

#[test]
fn a_join_with_an_unknown_token_is_reset_and_nothing_is_allocated() {
    let mut p = Pair::new();
    let conns = p.server.tcp().len();
    let (t, syn) = syn_with(
        MptcpOption::MpJoin(MpJoin::Syn {
            backup: false,
            addr_id: 1,
            token: 0xdead_beef,
            nonce: 7,
        }),
        "192.0.2.9:40001",
    );
    let mut out = Out::new();
    p.server.on_segment(t, syn, now(), &mut out);
    assert_eq!(out.len(), 1);
    let (_, rst) = &out[0];
    assert!(rst.flags.contains(TcpFlags::RST));
    assert_eq!(reset_reason_of(rst), Some(reset_reason::MPTCP_ERROR));
    assert_eq!(p.server.mib().get(Mib::MPJoinNoTokenFound), 1);
    assert_eq!(
        p.server.tcp().len(),
        conns,
        "nothing allocated for the join"
    );
}

#[test]
fn a_third_ack_with_a_wrong_hmac_is_reset_and_the_connection_survives() {
    let mut p = Pair::new();
    let mut to_s = Out::new();
    let path = join_path(40001);
    assert!(p.client.join(p.m, &path, now(), &mut to_s));
    // SYN → listener; its SYN/ACK → client; the client's third ACK is forged.
    let (t, syn) = to_s.pop().unwrap();
    let mut to_c = Out::new();
    p.server
        .on_segment(flipped(&t), received(&syn), now(), &mut to_c);
    let (t2, synack) = to_c.pop().unwrap();
    assert!(matches!(
        mptcp(&synack).as_slice(),
        [MptcpOption::MpJoin(MpJoin::SynAck { .. })]
    ));
    p.client
        .on_segment(flipped(&t2), received(&synack), now(), &mut to_s);
    let (t3, mut ack) = to_s.pop().unwrap();
    let mut opts = OptionsBuf::new();
    opts.push_mptcp(&MptcpOption::MpJoin(MpJoin::Ack { hmac: [0x42; 20] }))
        .unwrap();
    ack.options = opts;
    let mut out = Out::new();
    p.server
        .on_segment(flipped(&t3), received(&ack), now(), &mut out);
    let rst = out
        .iter()
        .find(|(_, s)| s.flags.contains(TcpFlags::RST))
        .expect("a RST");
    assert_eq!(reset_reason_of(&rst.1), Some(reset_reason::MPTCP_ERROR));
    assert_eq!(p.server.mib().get(Mib::MPJoinAckHMacFailure), 1);
    assert_eq!(p.server.mib().get(Mib::MPJoinAckRx), 1);
    // The first subflow and the connection are untouched.
    let sm = p.sm.unwrap();
    assert_eq!(p.server.info(sm).unwrap().phase, Phase::Established);
    assert_eq!(p.server.len(), 1, "the connection survives");
    assert_eq!(p.server.tcp().len(), 1, "only the initial subflow is left");
}

#[test]
fn a_syn_ack_with_a_wrong_hmac_makes_the_joiner_reset() {
    let mut p = Pair::new();
    let mut to_s = Out::new();
    let path = join_path(40002);
    assert!(p.client.join(p.m, &path, now(), &mut to_s));
    let (t, syn) = to_s.pop().unwrap();
    let mut to_c = Out::new();
    p.server
        .on_segment(flipped(&t), received(&syn), now(), &mut to_c);
    let (t2, mut synack) = to_c.pop().unwrap();
    let mut opts = OptionsBuf::new();
    opts.push_mss(1460).unwrap();
    opts.push_mptcp(&MptcpOption::MpJoin(MpJoin::SynAck {
        backup: false,
        addr_id: 0,
        hmac: 0x0123_4567_89ab_cdef,
        nonce: 99,
    }))
    .unwrap();
    synack.options = opts;
    let mut out = Out::new();
    p.client
        .on_segment(flipped(&t2), received(&synack), now(), &mut out);
    let rst = out
        .iter()
        .find(|(_, s)| s.flags.contains(TcpFlags::RST))
        .expect("a RST");
    assert_eq!(reset_reason_of(&rst.1), Some(reset_reason::MPTCP_ERROR));
    assert_eq!(p.client.mib().get(Mib::MPJoinSynAckHMacFailure), 1);
    assert_eq!(p.client.info(p.m).unwrap().phase, Phase::Established);
}

#[test]
fn joins_beyond_the_subflow_limit_are_refused_with_a_reason() {
    let mut p = Pair::new();
    // The default limit is 2 additional subflows.
    for port in 40010..40012u16 {
        let mut to_s = Out::new();
        let path = join_path(port);
        assert!(p.client.join(p.m, &path, now(), &mut to_s));
        p.exchange(to_s);
    }
    assert_eq!(p.server.mib().get(Mib::MPJoinAckRx), 2);
    assert_eq!(p.server.tcp().len(), 3);
    // A third join with the right token is over the listener's limit.
    let token = p.server.info(p.sm.unwrap()).unwrap().token;
    let (t, syn) = syn_with(
        MptcpOption::MpJoin(MpJoin::Syn {
            backup: false,
            addr_id: 2,
            token,
            nonce: 5,
        }),
        "192.0.2.2:40020",
    );
    let mut out = Out::new();
    p.server.on_segment(t, syn, now(), &mut out);
    assert_eq!(out.len(), 1);
    assert!(out[0].1.flags.contains(TcpFlags::RST));
    assert_eq!(reset_reason_of(&out[0].1), Some(reset_reason::NO_RESOURCES));
    assert_eq!(p.server.mib().get(Mib::MPJoinRejected), 1);
    assert_eq!(
        p.server.tcp().len(),
        3,
        "nothing allocated for the refused join"
    );
}

#[test]
fn remove_addr_resets_every_subflow_to_that_address() {
    let mut p = Pair::new();
    let mut to_s = Out::new();
    let path = join_path(40030);
    assert!(p.client.join(p.m, &path, now(), &mut to_s));
    p.exchange(to_s);
    assert_eq!(p.server.tcp().len(), 2);
    // The client removes its address id 1, on the initial subflow (a duplicate ACK).
    let (t, mut ack) = p.last_initial.clone().unwrap();
    assert!(ack.flags.contains(TcpFlags::ACK));
    let mut opts = OptionsBuf::new();
    opts.push_mptcp(&MptcpOption::RemoveAddr(
        dataplane::wire::mptcp::RemoveAddr::new(&[1]).unwrap(),
    ))
    .unwrap();
    ack.options = opts;
    ack.payload = None;
    let mut out = Out::new();
    p.server
        .on_segment(flipped(&t), received(&ack), now(), &mut out);
    assert_eq!(p.server.mib().get(Mib::RmAddr), 1);
    assert_eq!(p.server.mib().get(Mib::RmSubflow), 1);
    assert!(
        out.iter()
            .any(|(tt, s)| tt.remote.port() == 40030 && s.flags.contains(TcpFlags::RST)),
        "the join subflow is reset: {out:?}"
    );
    assert_eq!(p.server.tcp().len(), 1, "the initial subflow stays");
    assert_eq!(
        p.server.info(p.sm.unwrap()).unwrap().phase,
        Phase::Established
    );
}
