#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Scripted exchanges with an MPTCP stack: segments in, the exact options out. A
//! well-behaved peer stack drives the handshakes, or a script plays the peer segment by
//! segment with a known key and sequence numbers; either way the test forges what a
//! hostile or broken peer sends (unknown token, wrong HMACs, bad mappings, MP_FAIL,
//! MP_FASTCLOSE) and checks the stack's answer: the options it sends, the MIB counter,
//! what the application sees, nothing allocated, the rest unharmed.

use dataplane::mptcp::crypto::{derive, KeySource};
use dataplane::mptcp::mib::Mib;
use dataplane::mptcp::msk::{MskId, Phase};
use dataplane::mptcp::stack::{Config, JoinPath, Stack};
use dataplane::port::heap::{HeapPool, HeapShared};
use dataplane::port::PacketBuf;
use dataplane::seq::{Dsn, TcpSeq};
use dataplane::tcp::{
    Events, FourTuple, Instant, Payload, Secrets, SegOptions, SegmentIn, SegmentOut, TableConfig,
};
use dataplane::wire::mptcp::{
    reset_reason, DsnField, Dss, Mapping, MpCapable, MpJoin, MpcVariant, MptcpOption, RemoveAddr,
};
use dataplane::wire::tcp::{OptionsBuf, TcpFlags, TcpOption, TcpOptions};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

type S = HeapShared;

type Out = Vec<(FourTuple, SegmentOut<S>)>;

fn stack_with(seed: u8, cfg: Config) -> Stack<S> {
    Stack::new(
        TableConfig::default(),
        Secrets::new([seed; 32]),
        cfg,
        KeySource::from_seed([seed; 32]),
        (0, 1),
        Instant::default(),
    )
}

fn stack(seed: u8) -> Stack<S> {
    stack_with(seed, Config::default())
}

/// A payload holding a copy of `bytes`.
fn payload(bytes: &[u8]) -> Payload<S> {
    let buf = HeapPool::new(1).alloc_from(bytes).unwrap();
    Payload::new(buf.into_shared())
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
fn received(seg: &SegmentOut<S>) -> SegmentIn<S> {
    let mut s = SegmentIn::bare(seg.seq, seg.ack, seg.flags, seg.window);
    s.raw_options.extend(seg.options.as_bytes().iter().copied());
    s.options = SegOptions::parse(&s.raw_options);
    s.payload = seg.payload.clone();
    s
}

fn flipped(t: &FourTuple) -> FourTuple {
    FourTuple {
        local: t.remote,
        remote: t.local,
    }
}

/// The MPTCP options of a segment.
fn mptcp(seg: &SegmentOut<S>) -> Vec<MptcpOption> {
    TcpOptions::new(seg.options.as_bytes())
        .filter_map(|o| match o {
            Ok(TcpOption::Mptcp(b)) => MptcpOption::parse(b).ok(),
            _ => None,
        })
        .collect()
}

/// A client and a listener with one established MPTCP connection between them.
struct Pair {
    client: Stack<S>,
    server: Stack<S>,
    /// The connection at the client.
    m: MskId,
    /// The same connection at the listener.
    sm: Option<MskId>,
    /// The last segment the client sent from each of its ports.
    last: HashMap<u16, (FourTuple, SegmentOut<S>)>,
    /// The client port of every data segment the server sent.
    server_data_ports: Vec<u16>,
    /// The server's key, from its SYN/ACK.
    server_key: u64,
}

/// `client` opens an MPTCP connection from 192.0.2.1:40000 to the server; returns it
/// and the SYN.
fn connect_mptcp(client: &mut Stack<S>) -> (MskId, Out) {
    let mut to_s = Out::new();
    let m = client
        .connect(
            "192.0.2.1:40000".parse().unwrap(),
            server_addr(),
            true,
            now(),
            &mut to_s,
        )
        .unwrap();
    (m, to_s)
}

impl Pair {
    fn new() -> Self {
        Self::new_with(Config::default())
    }

    /// Both stacks with `cfg`.
    fn new_with(cfg: Config) -> Self {
        let mut client = stack_with(1, cfg.clone());
        let mut server = stack_with(2, cfg);
        server.listen(server_addr());
        let (m, to_s) = connect_mptcp(&mut client);
        let mut p = Pair {
            client,
            server,
            m,
            sm: None,
            last: HashMap::new(),
            server_data_ports: Vec::new(),
            server_key: 0,
        };
        p.exchange(to_s);
        assert_eq!(p.client.info(m).unwrap().phase, Phase::Established);
        assert!(!p.client.info(m).unwrap().fallback);
        p
    }

    /// Delivers `to_server` and everything it causes, both ways.
    fn exchange(&mut self, to_s: Out) {
        self.exchange_both(to_s, Out::new());
    }

    /// Delivers `to_s` and `to_c` and everything they cause, both ways.
    fn exchange_both(&mut self, mut to_s: Out, mut to_c: Out) {
        while !to_s.is_empty() || !to_c.is_empty() {
            for (t, seg) in std::mem::take(&mut to_s) {
                self.server
                    .on_segment(flipped(&t), received(&seg), now(), &mut to_c);
                self.last.insert(t.local.port(), (t, seg));
            }
            for (t, seg) in std::mem::take(&mut to_c) {
                if seg.data_len() > 0 {
                    self.server_data_ports.push(t.remote.port());
                }
                if let [MptcpOption::MpCapable(MpCapable {
                    variant: MpcVariant::SynAck { sender_key },
                    ..
                })] = mptcp(&seg).as_slice()
                {
                    self.server_key = *sender_key;
                }
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

impl Pair {
    /// Adds a join from the client's second address (address id 1) on `port`.
    fn join(&mut self, port: u16) {
        let mut to_s = Out::new();
        assert!(self.client.join(self.m, &join_path(port), now(), &mut to_s));
        self.exchange(to_s);
    }

    /// The server sends `n` segments' worth of data; returns the client ports they
    /// went to.
    fn server_sends(&mut self, n: usize) -> Vec<u16> {
        let sm = self.sm.unwrap();
        for _ in 0..n {
            self.server.send(sm, payload(&[7; 1000])).unwrap();
        }
        let mut to_c = Out::new();
        self.server.flush(sm, now(), &mut to_c);
        self.server_data_ports.clear();
        self.exchange_both(Out::new(), to_c);
        std::mem::take(&mut self.server_data_ports)
    }

    /// A pure ACK from the client's `port` (its last segment there, repeated) carrying
    /// only `opts`.
    fn forge_ack(&mut self, port: u16, opts: &[MptcpOption]) -> Out {
        let (t, mut ack) = self.last[&port].clone();
        let mut o = OptionsBuf::new();
        for opt in opts {
            o.push_mptcp(opt).unwrap();
        }
        ack.options = o;
        ack.payload = None;
        ack.flags = TcpFlags::ACK;
        let mut out = Out::new();
        self.server
            .on_segment(flipped(&t), received(&ack), now(), &mut out);
        out
    }
}

/// `seg` with its MPTCP options replaced by `f` of each (timestamps kept).
fn rewrite_mptcp(
    seg: &SegmentOut<S>,
    mut f: impl FnMut(MptcpOption) -> MptcpOption,
) -> SegmentOut<S> {
    let mut o = OptionsBuf::new();
    for opt in TcpOptions::new(seg.options.as_bytes()) {
        match opt.unwrap() {
            TcpOption::Timestamps { tsval, tsecr } => {
                o.push_timestamps(tsval, tsecr, false).unwrap()
            }
            TcpOption::Mptcp(b) => o.push_mptcp(&f(MptcpOption::parse(b).unwrap())).unwrap(),
            _ => {}
        }
    }
    let mut out = seg.clone();
    out.options = o;
    out
}

/// A SYN from `from` to the listener carrying `opt`.
fn syn_with(opt: MptcpOption, from: &str) -> (FourTuple, SegmentIn<S>) {
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
        path: Default::default(),
    };
    let tuple = FourTuple {
        local: server_addr(),
        remote: from.parse().unwrap(),
    };
    (tuple, received(&seg))
}

fn reset_reason_of(seg: &SegmentOut<S>) -> Option<u8> {
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
    let (t, mut ack) = p.last[&40000].clone();
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

// ----- a scripted client ------------------------------------------------------------

/// The scripted client's key (the Red Hat trace's client key).
const CLIENT_KEY: u64 = 0x4192_3206_b758_35f5;

/// A listener stack and a scripted MPTCP client that forges every segment: a known
/// key, sequence numbers from 1000, no TCP option but MSS (so no timestamps, window
/// scaling or SACK), exactly the MPTCP options each step names.
struct Script {
    server: Stack<S>,
    /// The connection's addresses as the listener sees them.
    tuple: FourTuple,
    /// The listener's key, from its SYN/ACK.
    server_key: u64,
    /// Our next sequence number.
    seq: TcpSeq,
    /// The listener's next sequence number.
    ack: TcpSeq,
    /// The connection at the listener, once established.
    m: Option<MskId>,
    /// Every event the listener's application saw.
    events: Events,
    now: Instant,
}

impl Script {
    /// A listener configured by `cfg`, nothing sent to it yet.
    fn listening(cfg: Config) -> Self {
        let mut server = stack_with(2, cfg);
        server.listen(server_addr());
        Script {
            server,
            tuple: FourTuple {
                local: server_addr(),
                remote: "192.0.2.1:40000".parse().unwrap(),
            },
            server_key: 0,
            seq: TcpSeq::new(1000),
            ack: TcpSeq::new(0),
            m: None,
            events: Events::NONE,
            now: now(),
        }
    }

    /// Our SYN with MP_CAPABLE; the listener answers with its key.
    fn syn(cfg: Config) -> Self {
        let mut s = Self::listening(cfg);
        let syn = MptcpOption::MpCapable(MpCapable::new(MpcVariant::Syn, false, false));
        let out = s.send(TcpFlags::SYN, b"", &[syn]);
        let (_, synack) = out
            .iter()
            .find(|(_, g)| g.flags.contains(TcpFlags::SYN))
            .expect("a SYN/ACK");
        s.server_key = match mptcp(synack).as_slice() {
            [MptcpOption::MpCapable(MpCapable {
                variant: MpcVariant::SynAck { sender_key },
                ..
            })] => *sender_key,
            o => panic!("{o:?}"),
        };
        s
    }

    /// Our third ACK with both keys; returns what the listener sends.
    fn third_ack(&mut self) -> Out {
        let ack = MptcpOption::MpCapable(MpCapable::new(
            MpcVariant::Ack {
                sender_key: CLIENT_KEY,
                receiver_key: self.server_key,
            },
            false,
            false,
        ));
        let out = self.send(TcpFlags::ACK, b"", &[ack]);
        assert!(self.m.is_some(), "established");
        out
    }

    /// A plain TCP connection (no MPTCP option on our SYN): the listener falls back.
    fn plain() -> Self {
        let mut s = Self::listening(Config::default());
        s.send(TcpFlags::SYN, b"", &[]);
        s.send(TcpFlags::ACK, b"", &[]);
        assert!(s.server.info(s.m()).unwrap().fallback);
        s
    }

    /// An established connection.
    fn new(cfg: Config) -> Self {
        let mut s = Self::syn(cfg);
        s.third_ack();
        s
    }

    /// The connection at the listener.
    fn m(&self) -> MskId {
        self.m.unwrap()
    }

    /// Sends one segment with `flags`, `data` and the MPTCP options `opts` at our next
    /// sequence number; returns what the listener sends in answer.
    fn send(&mut self, flags: TcpFlags, data: &[u8], opts: &[MptcpOption]) -> Out {
        let syn = flags.contains(TcpFlags::SYN);
        let mut o = OptionsBuf::new();
        if syn {
            o.push_mss(1460).unwrap();
        }
        for opt in opts {
            o.push_mptcp(opt).unwrap();
        }
        let seg = SegmentOut {
            seq: self.seq,
            ack: if syn { TcpSeq::new(0) } else { self.ack },
            flags,
            window: 65535,
            options: o,
            payload: (!data.is_empty()).then(|| payload(data)),
            path: Default::default(),
        };
        self.seq += data.len() as u32 + u32::from(syn || flags.contains(TcpFlags::FIN));
        let mut out = Out::new();
        self.server
            .on_segment(self.tuple, received(&seg), self.now, &mut out);
        self.settle(out)
    }

    /// Follows the listener's sequence numbers in `out` and collects its events.
    fn settle(&mut self, out: Out) -> Out {
        for (_, g) in &out {
            if g.flags.contains(TcpFlags::SYN) {
                self.ack = g.seq + 1;
                continue;
            }
            let end = g.seq + (g.data_len() as u32 + u32::from(g.flags.contains(TcpFlags::FIN)));
            if end.after(self.ack) {
                self.ack = end;
            }
        }
        while let Some(m) = self.server.next_ready() {
            let ev = self.server.take_events(m);
            if ev.contains(Events::CONNECTED) {
                self.m = Some(m);
            }
            self.events |= ev;
        }
        out
    }

    /// Runs the listener's timers `ms` later (delayed ACKs); returns what it sends.
    fn wait(&mut self, ms: u64) -> Out {
        self.now = self.now + Duration::from_millis(ms);
        let mut out = Out::new();
        self.server.on_timers(self.now, &mut out);
        self.settle(out)
    }

    /// Flushes the listener's connection; returns what it sends.
    fn flush(&mut self) -> Out {
        let mut out = Out::new();
        self.server.flush(self.m(), self.now, &mut out);
        self.settle(out)
    }

    /// Everything the listener's application can read.
    fn read(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        while let Some(p) = self.server.recv(self.m()) {
            v.extend_from_slice(p.bytes());
        }
        v
    }

    /// The DSN of our byte `off` (0 is the first).
    fn client_dsn(&self, off: u64) -> Dsn {
        derive(CLIENT_KEY).idsn + 1 + off
    }

    /// The DSN of the listener's byte `off`.
    fn server_dsn(&self, off: u64) -> Dsn {
        derive(self.server_key).idsn + 1 + off
    }
}

fn rst_of(out: &Out) -> &SegmentOut<S> {
    &out.iter()
        .find(|(_, g)| g.flags.contains(TcpFlags::RST))
        .expect("a RST")
        .1
}

fn no_rst(out: &Out) -> bool {
    out.iter().all(|(_, g)| !g.flags.contains(TcpFlags::RST))
}

/// The MPTCP options of the last segment in `out` without payload.
fn last_ack(out: &Out) -> Vec<MptcpOption> {
    let (_, g) = out
        .iter()
        .rev()
        .find(|(_, g)| g.data_len() == 0 && !g.flags.contains(TcpFlags::RST))
        .expect("an ACK");
    mptcp(g)
}

fn dss(data_ack: Option<DsnField>, mapping: Option<Mapping>, data_fin: bool) -> MptcpOption {
    MptcpOption::Dss(Dss {
        data_ack,
        mapping,
        data_fin,
    })
}

#[test]
fn mapped_data_is_delivered_and_data_acked_in_the_width_the_peer_uses() {
    let mut s = Script::new(Config::default());
    // 10 bytes mapped with a 32-bit DSN: a 32-bit DATA_ACK answers.
    let ack32 = DsnField::Bits32(s.server_dsn(0).low32());
    let map = Mapping {
        dsn: DsnField::Bits32(s.client_dsn(0).low32()),
        ssn: 1,
        data_len: 10,
        checksum: None,
    };
    let mut out = s.send(
        TcpFlags::ACK,
        b"0123456789",
        &[dss(Some(ack32), Some(map), false)],
    );
    out.extend(s.wait(100));
    assert_eq!(s.read(), b"0123456789");
    assert_eq!(
        last_ack(&out),
        vec![MptcpOption::Dss(Dss::ack(DsnField::Bits32(
            s.client_dsn(10).low32()
        )))]
    );
    // One 64-bit mapping for two segments, sent with the first only: a 64-bit
    // DATA_ACK covers both.
    let ack64 = DsnField::Bits64(s.server_dsn(0));
    let map = Mapping::new(s.client_dsn(10), 11, 8, None);
    let mut out = s.send(
        TcpFlags::ACK,
        b"abcd",
        &[dss(Some(ack64), Some(map), false)],
    );
    out.extend(s.send(TcpFlags::ACK, b"efgh", &[dss(Some(ack64), None, false)]));
    out.extend(s.wait(100));
    assert_eq!(s.read(), b"abcdefgh");
    assert_eq!(
        last_ack(&out),
        vec![MptcpOption::Dss(Dss::ack(DsnField::Bits64(
            s.client_dsn(18)
        )))]
    );
    assert!(no_rst(&out));
    assert_eq!(s.server.mib().get(Mib::DSSNoMatchTCP), 0);
    assert_eq!(s.server.info(s.m()).unwrap().phase, Phase::Established);
}

#[test]
fn a_mapping_outside_the_subflow_sequence_space_is_refused_with_a_reset() {
    // Once the subflow is fully established it cannot fall back: data its mapping
    // does not cover is a protocol error, MP_TCPRST reason 1 (Linux: MAPPING_INVALID,
    // subflow_can_fallback false).
    for stale in [false, true] {
        let mut s = Script::new(Config::default());
        let ack = Some(DsnField::Bits64(s.server_dsn(0)));
        let mut sent = 0;
        let map = if stale {
            // A first mapping delivered, then data at SSN 11 whose mapping ends before
            // it (it names SSN 1 again).
            let first = Mapping::new(s.client_dsn(0), 1, 10, None);
            let out = s.send(
                TcpFlags::ACK,
                b"0123456789",
                &[dss(ack, Some(first), false)],
            );
            assert!(no_rst(&out));
            sent = 10;
            Mapping::new(s.client_dsn(10), 1, 10, None)
        } else {
            // Data at SSN 1 whose mapping starts at SSN 5001.
            Mapping::new(s.client_dsn(0), 5001, 10, None)
        };
        let out = s.send(TcpFlags::ACK, b"abcdefghij", &[dss(ack, Some(map), false)]);
        assert_eq!(
            mptcp(rst_of(&out)),
            vec![MptcpOption::MpTcpRst {
                flags: 0,
                reason: reset_reason::MPTCP_ERROR
            }]
        );
        assert_eq!(s.server.mib().get(Mib::DSSNoMatchTCP), 1);
        assert_eq!(s.server.mib().get(Mib::MPRstTx), 1);
        assert_eq!(s.read().len(), sent, "the unmapped bytes are not delivered");
        assert_eq!(s.server.tcp().len(), 0);
        // The connection outlives its only subflow for `close_timeout` (60 s), waiting
        // for a join, and is reset only then.
        assert!(!s.events.contains(Events::RESET), "{:?}", s.events);
        assert_eq!(s.server.orphans(), 1);
        s.wait(59_000);
        assert!(!s.events.contains(Events::RESET), "{:?}", s.events);
        s.wait(1_000);
        assert!(s.events.contains(Events::RESET), "{:?}", s.events);
        assert_eq!(s.server.orphans(), 0);
        s.flush();
        assert!(s.server.is_empty());
    }
}

#[test]
fn the_peers_data_fin_is_reported_and_data_acked_and_ours_follows_our_data() {
    for combined in [false, true] {
        let mut s = Script::new(Config::default());
        let m = s.m();
        let ack = Some(DsnField::Bits64(s.server_dsn(0)));
        let mut out = if combined {
            // Data and DATA_FIN in one mapping: data-level length 5 + 1.
            let map = Mapping::new(s.client_dsn(0), 1, 6, None);
            s.send(TcpFlags::ACK, b"hello", &[dss(ack, Some(map), true)])
        } else {
            let map = Mapping::new(s.client_dsn(0), 1, 5, None);
            s.send(TcpFlags::ACK, b"hello", &[dss(ack, Some(map), false)]);
            // Linux's DATA_FIN-only form on a pure ACK: SSN 0, length 1.
            let fin = Dss::data_fin_only(s.client_dsn(5), ack, None);
            s.send(TcpFlags::ACK, b"", &[MptcpOption::Dss(fin)])
        };
        out.extend(s.wait(100));
        // The DATA_ACK covers the DATA_FIN: its DSN + 1.
        let data_ack = DsnField::Bits64(s.client_dsn(6));
        assert_eq!(last_ack(&out), vec![MptcpOption::Dss(Dss::ack(data_ack))]);
        // The application sees the peer's close once it read everything before it.
        assert!(!s.events.contains(Events::PEER_FIN));
        assert_eq!(s.read(), b"hello");
        s.flush();
        assert!(s.events.contains(Events::PEER_FIN), "{:?}", s.events);
        assert!(s.server.peer_closed(m));
        // Our 3 bytes, then our DATA_FIN at the DSN after them: on the data segment
        // when it closes right away (data-level length 3 + 1), else on a pure ACK in
        // Linux's DATA_FIN-only form.
        s.server.send(m, payload(b"bye")).unwrap();
        if combined {
            s.server.close(m);
        }
        let out = s.flush();
        let (_, data) = out.iter().find(|(_, g)| g.data_len() > 0).expect("data");
        assert_eq!(data.payload.as_ref().unwrap().bytes(), b"bye");
        let len = 3 + u16::from(combined);
        assert_eq!(
            mptcp(data),
            vec![dss(
                Some(data_ack),
                Some(Mapping::new(s.server_dsn(0), 1, len, None)),
                combined
            )]
        );
        if !combined {
            let ack = DsnField::Bits64(s.server_dsn(3));
            s.send(TcpFlags::ACK, b"", &[MptcpOption::Dss(Dss::ack(ack))]);
            s.server.close(m);
            let out = s.flush();
            assert_eq!(
                last_ack(&out),
                vec![MptcpOption::Dss(Dss::data_fin_only(
                    s.server_dsn(3),
                    Some(data_ack),
                    None
                ))]
            );
        }
        assert!(!s.events.contains(Events::CLOSED));
        // Our DATA_FIN acknowledged: the connection is closed and the subflow FINs.
        let out = s.send(
            TcpFlags::ACK,
            b"",
            &[MptcpOption::Dss(Dss::ack(DsnField::Bits64(
                s.server_dsn(4),
            )))],
        );
        assert!(s.events.contains(Events::CLOSED), "{:?}", s.events);
        assert!(out.iter().any(|(_, g)| g.flags.contains(TcpFlags::FIN)));
        assert!(no_rst(&out));
    }
}

#[test]
fn the_peers_data_fin_on_a_pure_ack_is_answered_by_our_subflow_fin_alone() {
    let mut s = Script::new(Config::default());
    let m = s.m();
    // We close first: our DATA_FIN goes out on a pure ACK.
    s.server.close(m);
    let out = s.flush();
    assert!(
        matches!(
            last_ack(&out)[..],
            [MptcpOption::Dss(Dss { data_fin: true, .. })]
        ),
        "{out:?}"
    );
    // The peer acknowledges it and sends its own DATA_FIN on a pure ACK (Linux does so
    // on every subflow). Both DATA_FINs are done: the subflow's FIN leaves, and it
    // carries the DATA_ACK of the peer's DATA_FIN — no separate ACK before it, and
    // none owed at the end of the burst.
    let ack = Some(DsnField::Bits64(s.server_dsn(1)));
    let fin = Dss::data_fin_only(s.client_dsn(0), ack, None);
    let out = s.send(TcpFlags::ACK, b"", &[MptcpOption::Dss(fin)]);
    assert!(s.events.contains(Events::CLOSED), "{:?}", s.events);
    assert_eq!(out.len(), 1, "{out:?}");
    let (_, g) = &out[0];
    assert!(g.flags.contains(TcpFlags::FIN));
    let data_ack = match &mptcp(g)[..] {
        [MptcpOption::Dss(Dss {
            data_ack: Some(a), ..
        })] => *a,
        other => panic!("no DATA_ACK on the FIN: {other:?}"),
    };
    let expected = s.client_dsn(1);
    assert!(
        data_ack == DsnField::Bits64(expected) || data_ack == DsnField::Bits32(expected.low32()),
        "{data_ack:?}"
    );
    assert!(s.wait(0).is_empty());
}

#[test]
fn a_plain_connection_ended_by_a_rst_in_time_wait_keeps_its_unread_data() {
    // We close first; the peer sends its last data and FIN; the subflow is in
    // TIME-WAIT when the peer, gone after our ACK, answers a later segment with a RST
    // (Linux, `tcp_rfc1337` 0). Nothing is lost on the wire: the data not read yet
    // stays readable and the connection ends cleanly once it was read — or, when the
    // reader never takes it, is reset after TIME-WAIT's length.
    for reads in [true, false] {
        let mut s = Script::plain();
        let m = s.m();
        s.server.close(m);
        let out = s.flush();
        assert!(
            out.iter().any(|(_, g)| g.flags.contains(TcpFlags::FIN)),
            "{out:?}"
        );
        s.send(TcpFlags::ACK, b"", &[]);
        s.send(TcpFlags::ACK | TcpFlags::FIN, b"last bytes", &[]);
        s.send(TcpFlags::RST, b"", &[]);
        assert!(!s.events.contains(Events::RESET), "{:?}", s.events);
        assert!(!s.events.contains(Events::CLOSED), "{:?}", s.events);
        s.wait(59_000);
        assert!(!s.events.contains(Events::RESET), "{:?}", s.events);
        if reads {
            assert_eq!(s.read(), b"last bytes");
            s.flush();
            assert!(s.events.contains(Events::PEER_FIN), "{:?}", s.events);
            assert!(s.events.contains(Events::CLOSED), "{:?}", s.events);
            s.flush();
            assert!(s.server.info(m).is_none(), "freed once read");
        }
        s.wait(2_000);
        assert_eq!(s.events.contains(Events::RESET), !reads, "{:?}", s.events);
    }
}

#[test]
fn subflows_ending_after_both_data_fins_leave_the_unread_data_and_no_orphan() {
    // Both DATA_FINs are done (the peer's arrived, ours was DATA_ACKed) but the
    // application has not read the last data when the peer closes the subflow: the
    // connection has nothing left to exchange, so it is no orphan waiting for a join
    // (no path manager, no `close_timeout` reset); it ends once read.
    let mut s = Script::new(Config::default());
    let m = s.m();
    let ack = Some(DsnField::Bits64(s.server_dsn(0)));
    let map = Mapping::new(s.client_dsn(0), 1, 6, None);
    s.send(TcpFlags::ACK, b"hello", &[dss(ack, Some(map), true)]);
    s.server.close(m);
    s.flush();
    let acked = Some(DsnField::Bits64(s.server_dsn(1)));
    s.send(TcpFlags::ACK, b"", &[dss(acked, None, false)]);
    s.send(
        TcpFlags::ACK | TcpFlags::FIN,
        b"",
        &[dss(acked, None, false)],
    );
    s.flush();
    s.send(TcpFlags::ACK, b"", &[dss(acked, None, false)]);
    let info = s.server.info(m).expect("kept for the reader");
    assert_eq!(info.subflows, 0, "{info:?}");
    assert_eq!(s.server.orphans(), 0);
    let states = s.server.count_states();
    assert_eq!((states.orphan, states.closing), (0, 1), "{states:?}");
    assert!(!s.events.contains(Events::RESET), "{:?}", s.events);
    assert_eq!(s.read(), b"hello");
    s.flush();
    assert!(
        s.events.contains(Events::PEER_FIN | Events::CLOSED),
        "{:?}",
        s.events
    );
    assert!(!s.events.contains(Events::RESET), "{:?}", s.events);
}

#[test]
fn flag_c_is_sent_when_joins_to_the_initial_address_are_refused_and_honoured_from_peers() {
    let cfg = Config {
        allow_join_initial_addr_port: false,
        ..Config::default()
    };
    // The client's SYN and the listener's SYN/ACK carry flag C.
    let mut client = stack_with(1, cfg.clone());
    let (m, to_s) = connect_mptcp(&mut client);
    assert!(
        matches!(
            mptcp(&to_s[0].1)[..],
            [MptcpOption::MpCapable(MpCapable {
                deny_join_id0: true,
                ..
            })]
        ),
        "{to_s:?}"
    );
    let mut server = stack_with(2, cfg.clone());
    server.listen(server_addr());
    let mut to_c = Out::new();
    server.on_segment(flipped(&to_s[0].0), received(&to_s[0].1), now(), &mut to_c);
    assert!(
        matches!(
            mptcp(&to_c[0].1)[..],
            [MptcpOption::MpCapable(MpCapable {
                deny_join_id0: true,
                variant: MpcVariant::SynAck { .. },
                ..
            })]
        ),
        "{to_c:?}"
    );
    // The client takes it from the SYN/ACK: its path manager may not join there.
    let mut back = Out::new();
    client.on_segment(flipped(&to_c[0].0), received(&to_c[0].1), now(), &mut back);
    assert!(client.pm_view(m).unwrap().deny_join_initial);
    // The default: no flag C either way, and joins to the initial address allowed.
    let mut p = Pair::new();
    assert!(!p.client.pm_view(p.m).unwrap().deny_join_initial);
    let (_, syn) = p.last.values().next().unwrap().clone();
    assert!(!matches!(
        mptcp(&syn)[..],
        [MptcpOption::MpCapable(MpCapable {
            deny_join_id0: true,
            ..
        })]
    ));
    p.join(40001);
}

#[test]
fn a_peer_with_flag_c_has_one_announced_address_taken_even_with_no_add_addr_limit() {
    for deny in [false, true] {
        let cfg = Config {
            allow_join_initial_addr_port: !deny,
            ..Config::default()
        };
        assert_eq!(cfg.add_addr_accepted, 0);
        let mut p = Pair::new_with(cfg);
        p.server.announce("198.51.100.1".parse().unwrap());
        p.server.announce("203.0.113.1".parse().unwrap());
        let sm = p.sm.unwrap();
        let mut to_c = Out::new();
        p.server.flush(sm, now(), &mut to_c);
        p.exchange_both(Out::new(), to_c);
        let peers = p.client.pm_view(p.m).unwrap().peer_addrs;
        assert_eq!(peers.len(), usize::from(deny), "deny {deny}: {peers:?}");
    }
}

#[test]
fn mp_fastclose_with_our_key_resets_the_connection_and_a_wrong_key_is_ignored() {
    let mut s = Script::new(Config::default());
    let wrong = MptcpOption::MpFastclose {
        receiver_key: s.server_key ^ 1,
    };
    let out = s.send(TcpFlags::ACK, b"", &[wrong]);
    assert!(no_rst(&out));
    assert_eq!(s.server.mib().get(Mib::MPFastcloseRx), 0);
    assert_eq!(s.server.info(s.m()).unwrap().phase, Phase::Established);
    assert!(!s.events.contains(Events::RESET));

    let right = MptcpOption::MpFastclose {
        receiver_key: s.server_key,
    };
    let out = s.send(TcpFlags::ACK, b"", &[right]);
    assert_eq!(
        mptcp(rst_of(&out)),
        vec![MptcpOption::MpTcpRst {
            flags: 0,
            reason: reset_reason::UNSPECIFIED
        }]
    );
    assert_eq!(s.server.mib().get(Mib::MPFastcloseRx), 1);
    assert!(s.events.contains(Events::RESET), "{:?}", s.events);
    assert_eq!(s.server.tcp().len(), 0);
}

#[test]
fn our_abort_sends_mp_fastclose_with_the_peers_key_and_mp_tcprst() {
    let mut s = Script::new(Config::default());
    let mut out = Out::new();
    s.server.abort(s.m(), s.now, &mut out);
    assert_eq!(
        mptcp(rst_of(&out)),
        vec![
            MptcpOption::MpFastclose {
                receiver_key: CLIENT_KEY
            },
            MptcpOption::MpTcpRst {
                flags: 0,
                reason: reset_reason::UNSPECIFIED
            }
        ]
    );
    assert_eq!(s.server.mib().get(Mib::MPFastcloseTx), 1);
    assert_eq!(s.server.mib().get(Mib::MPRstTx), 1);
}

#[test]
fn a_join_before_the_connection_is_established_is_prohibited() {
    let mut s = Script::syn(Config::default());
    let (t, syn) = syn_with(
        MptcpOption::MpJoin(MpJoin::Syn {
            backup: false,
            addr_id: 1,
            token: derive(s.server_key).token,
            nonce: 7,
        }),
        "192.0.2.2:40001",
    );
    let mut out = Out::new();
    s.server.on_segment(t, syn, now(), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        reset_reason_of(rst_of(&out)),
        Some(reset_reason::PROHIBITED)
    );
    assert_eq!(s.server.mib().get(Mib::MPJoinNotEstablished), 1);
    assert_eq!(s.server.tcp().len(), 1, "nothing allocated for the join");
}

#[test]
fn mp_prio_received_makes_the_subflow_a_backup() {
    let mut p = Pair::new();
    p.join(40040);
    // The client asks for its join subflow to be a backup: everything goes on the
    // initial subflow.
    let out = p.forge_ack(40040, &[MptcpOption::MpPrio { backup: true }]);
    assert!(no_rst(&out));
    assert_eq!(p.server.mib().get(Mib::MPPrioRx), 1);
    let ports = p.server_sends(20);
    assert!(
        !ports.is_empty() && ports.iter().all(|&pt| pt == 40000),
        "{ports:?}"
    );
    // Roles swapped: the initial subflow a backup, the join a regular one.
    p.forge_ack(40000, &[MptcpOption::MpPrio { backup: true }]);
    p.forge_ack(40040, &[MptcpOption::MpPrio { backup: false }]);
    assert_eq!(p.server.mib().get(Mib::MPPrioRx), 3);
    let ports = p.server_sends(20);
    assert!(
        !ports.is_empty() && ports.iter().all(|&pt| pt == 40040),
        "{ports:?}"
    );
}

#[test]
fn set_backup_sends_mp_prio_on_the_subflows_from_that_address() {
    let mut p = Pair::new();
    p.join(40050);
    let second: IpAddr = "192.0.2.2".parse().unwrap();
    assert_eq!(p.client.set_backup(p.m, second, true), 1);
    let mut to_s = Out::new();
    p.client.flush(p.m, now(), &mut to_s);
    assert_eq!(to_s.len(), 1, "{to_s:?}");
    let (t, ack) = &to_s[0];
    assert_eq!(t.local.port(), 40050);
    assert_eq!(ack.data_len(), 0);
    assert!(
        matches!(
            mptcp(ack).as_slice(),
            [
                MptcpOption::Dss(Dss { mapping: None, .. }),
                MptcpOption::MpPrio { backup: true }
            ]
        ),
        "{:?}",
        mptcp(ack)
    );
    assert_eq!(p.client.mib().get(Mib::MPPrioTx), 1);
    p.exchange(to_s);
    assert_eq!(p.server.mib().get(Mib::MPPrioRx), 1);
    let ports = p.server_sends(20);
    assert!(
        !ports.is_empty() && ports.iter().all(|&pt| pt == 40000),
        "{ports:?}"
    );
    // And back to a regular subflow.
    assert_eq!(p.client.set_backup(p.m, second, false), 1);
    let mut to_s = Out::new();
    p.client.flush(p.m, now(), &mut to_s);
    assert!(mptcp(&to_s[0].1).contains(&MptcpOption::MpPrio { backup: false }));
    p.exchange(to_s);
    assert_eq!(p.server.mib().get(Mib::MPPrioRx), 2);
    assert_eq!(p.client.mib().get(Mib::MPPrioTx), 2);
    // No subflow from that address: nothing to do.
    assert_eq!(
        p.client
            .set_backup(p.m, "192.0.2.99".parse().unwrap(), true),
        0
    );
}

#[test]
fn a_join_to_a_backup_address_is_made_a_backup_with_mp_prio() {
    // The listener's second address is on a `backup` port.
    let backup: SocketAddr = "198.51.100.2:80".parse().unwrap();
    let mut p = Pair::new_with(Config {
        backup_addrs: vec![backup.ip()],
        ..Config::default()
    });
    p.server.listen(backup);
    let path = JoinPath {
        remote: backup,
        ..join_path(40070)
    };
    let mut to_s = Out::new();
    assert!(p.client.join(p.m, &path, now(), &mut to_s));
    p.exchange(to_s);
    assert_eq!(p.server.tcp().len(), 2);
    // MP_PRIO B=1 went to the client once the join was established …
    assert_eq!(p.server.mib().get(Mib::MPPrioTx), 1);
    assert_eq!(p.client.mib().get(Mib::MPPrioRx), 1);
    // … and the listener's own scheduler keeps the backup idle.
    let ports = p.server_sends(20);
    assert!(
        !ports.is_empty() && ports.iter().all(|&pt| pt == 40000),
        "{ports:?}"
    );
    // The client's scheduler honours the peer's request too.
    for _ in 0..20 {
        p.client.send(p.m, payload(&[5; 1000])).unwrap();
    }
    let mut to_s = Out::new();
    p.client.flush(p.m, now(), &mut to_s);
    assert!(to_s.iter().any(|(_, g)| g.data_len() > 0));
    assert!(to_s
        .iter()
        .filter(|(_, g)| g.data_len() > 0)
        .all(|(t, _)| t.local.port() == 40000));
    // A join to the regular address stays regular.
    p.join(40071);
    assert_eq!(p.server.mib().get(Mib::MPPrioTx), 1);
}

#[test]
fn remove_address_sends_remove_addr_and_resets_the_subflows_from_it() {
    let mut p = Pair::new();
    p.join(40060);
    assert_eq!(p.server.tcp().len(), 2);
    assert_eq!(p.client.remove_address("192.0.2.2".parse().unwrap()), 1);
    let mut to_s = Out::new();
    p.client.flush(p.m, now(), &mut to_s);
    // REMOVE_ADDR with the address id 1 on the initial subflow, a RST on the other.
    let (_, rm) = to_s
        .iter()
        .find(|(t, _)| t.local.port() == 40000)
        .expect("a segment on the initial subflow");
    assert!(
        mptcp(rm).contains(&MptcpOption::RemoveAddr(RemoveAddr::new(&[1]).unwrap())),
        "{:?}",
        mptcp(rm)
    );
    let (_, rst) = to_s
        .iter()
        .find(|(t, g)| t.local.port() == 40060 && g.flags.contains(TcpFlags::RST))
        .expect("a RST on the removed subflow");
    assert_eq!(reset_reason_of(rst), Some(reset_reason::UNSPECIFIED));
    assert_eq!(p.client.mib().get(Mib::RmAddrTx), 1);
    assert_eq!(p.client.mib().get(Mib::RmSubflow), 1);
    assert_eq!(p.client.tcp().len(), 1);
    p.exchange(to_s);
    assert_eq!(p.server.mib().get(Mib::RmAddr), 1);
    assert_eq!(p.server.tcp().len(), 1);
    assert_eq!(p.client.info(p.m).unwrap().phase, Phase::Established);
    assert_eq!(
        p.server.info(p.sm.unwrap()).unwrap().phase,
        Phase::Established
    );
    // The connection goes on over the initial subflow.
    let ports = p.server_sends(5);
    assert!(
        !ports.is_empty() && ports.iter().all(|&pt| pt == 40000),
        "{ports:?}"
    );
}

#[test]
fn remove_address_withdraws_an_announced_address() {
    let other: IpAddr = "198.51.100.2".parse().unwrap();
    let mut s = Script::syn(Config::default());
    s.server.set_signal(&[other]);
    let out = s.third_ack();
    assert!(
        out.iter().any(|(_, g)| mptcp(g)
            .iter()
            .any(|o| matches!(o, MptcpOption::AddAddr(a) if a.addr_id == 1 && a.addr == other))),
        "{out:?}"
    );
    assert_eq!(s.server.remove_address(other), 1);
    let out = s.flush();
    assert_eq!(
        last_ack(&out),
        vec![
            MptcpOption::Dss(Dss::ack(DsnField::Bits32(s.client_dsn(0).low32()))),
            MptcpOption::RemoveAddr(RemoveAddr::new(&[1]).unwrap())
        ]
    );
    assert_eq!(s.server.mib().get(Mib::RmAddrTx), 1);
    assert_eq!(s.server.mib().get(Mib::RmSubflow), 0);
    assert_eq!(s.server.info(s.m()).unwrap().phase, Phase::Established);
    // The announcement is not repeated any more.
    let out = s.wait(130_000);
    assert!(
        out.iter().all(|(_, g)| !mptcp(g)
            .iter()
            .any(|o| matches!(o, MptcpOption::AddAddr(_)))),
        "{out:?}"
    );
    assert_eq!(s.server.mib().get(Mib::AddAddrTx), 1);
}

#[test]
fn a_checksum_failure_on_the_only_subflow_sends_mp_fail_and_falls_back_at_the_infinite_mapping() {
    let mut s = Script::new(Config {
        checksum: true,
        ..Config::default()
    });
    assert!(s.server.info(s.m()).unwrap().checksum);
    let ack = Some(DsnField::Bits64(s.server_dsn(0)));
    // 10 bytes whose checksum is wrong: not delivered, no reset, MP_FAIL with the
    // mapping's DSN on the ACK.
    let map = Mapping::new(s.client_dsn(0), 1, 10, Some(0x1234));
    let mut out = s.send(TcpFlags::ACK, b"0123456789", &[dss(ack, Some(map), false)]);
    out.extend(s.wait(100));
    assert!(no_rst(&out));
    assert_eq!(s.read(), b"");
    assert_eq!(s.server.mib().get(Mib::DataCsumErr), 1);
    assert_eq!(
        last_ack(&out),
        vec![
            MptcpOption::Dss(Dss::ack(DsnField::Bits64(s.client_dsn(0)))),
            MptcpOption::MpFail {
                dsn: s.client_dsn(0)
            }
        ]
    );
    assert_eq!(s.server.mib().get(Mib::MPFailTx), 1);
    // We answer with the infinite mapping from that DSN and send the bytes again:
    // plain TCP from there on, both ways.
    let infinite = Mapping {
        dsn: DsnField::Bits64(s.client_dsn(0)),
        ssn: 11,
        data_len: 0,
        checksum: Some(0),
    };
    let mut out = s.send(
        TcpFlags::ACK,
        b"0123456789",
        &[dss(ack, Some(infinite), false)],
    );
    out.extend(s.send(TcpFlags::ACK, b"more", &[]));
    out.extend(s.wait(100));
    assert!(no_rst(&out));
    assert_eq!(s.server.mib().get(Mib::InfiniteMapRx), 1);
    assert_eq!(s.read(), b"0123456789more");
    assert!(s.server.info(s.m()).unwrap().fallback);
    assert_eq!(
        last_ack(&out),
        vec![],
        "no MPTCP options after the fallback"
    );
    s.server.send(s.m(), payload(b"back")).unwrap();
    let out = s.flush();
    let (_, data) = out.iter().find(|(_, g)| g.data_len() > 0).expect("data");
    assert!(mptcp(data).is_empty());
    assert_eq!(
        s.server.mib().get(Mib::MPFailTx),
        1,
        "sent once counted once"
    );
}

#[test]
fn mp_fail_received_is_answered_with_an_infinite_mapping_and_the_data_again() {
    let mut s = Script::new(Config {
        checksum: true,
        ..Config::default()
    });
    let m = s.m();
    s.server.send(m, payload(b"abcdefgh")).unwrap();
    let out = s.flush();
    let (_, data) = out.iter().find(|(_, g)| g.data_len() > 0).expect("data");
    let first_seq = data.seq;
    assert!(matches!(
        mptcp(data).as_slice(),
        [MptcpOption::Dss(Dss {
            mapping: Some(Mapping {
                ssn: 1,
                data_len: 8,
                checksum: Some(_),
                ..
            }),
            ..
        })]
    ));
    // The peer says that mapping failed its checksum.
    let ack = Some(DsnField::Bits64(s.server_dsn(0)));
    let fail = MptcpOption::MpFail {
        dsn: s.server_dsn(0),
    };
    let out = s.send(TcpFlags::ACK, b"", &[dss(ack, None, false), fail]);
    assert!(no_rst(&out));
    assert_eq!(s.server.mib().get(Mib::MPFailRx), 1);
    assert_eq!(s.server.mib().get(Mib::InfiniteMapTx), 1);
    assert!(s.server.info(m).unwrap().fallback);
    // The same bytes again after the first copy, with the infinite mapping from the
    // failed DSN (the peer never sent a DSN, so the DATA_ACK is 32 bits).
    let (_, again) = out
        .iter()
        .find(|(_, g)| g.data_len() > 0)
        .expect("data again");
    assert_eq!(again.seq, first_seq + 8);
    assert_eq!(again.payload.as_ref().unwrap().bytes(), b"abcdefgh");
    assert_eq!(
        mptcp(again),
        vec![dss(
            Some(DsnField::Bits32(s.client_dsn(0).low32())),
            Some(Mapping {
                dsn: DsnField::Bits64(s.server_dsn(0)),
                ssn: 9,
                data_len: 0,
                checksum: Some(0),
            }),
            false
        )]
    );
    // Plain TCP from there: the subflow ACK frees the data, new data has no options.
    s.send(TcpFlags::ACK, b"", &[]);
    assert_eq!(
        s.server.send_space(m),
        Config::default().send_budget as usize
    );
    s.server.send(m, payload(b"ij")).unwrap();
    let out = s.flush();
    let (_, data) = out.iter().find(|(_, g)| g.data_len() > 0).expect("data");
    assert!(mptcp(data).is_empty());
    // An MP_FAIL repeated by the peer changes nothing.
    let out = s.send(TcpFlags::ACK, b"", &[fail]);
    assert!(no_rst(&out));
    assert_eq!(s.server.mib().get(Mib::InfiniteMapTx), 1);
}

#[test]
fn a_checksum_failure_with_several_subflows_resets_with_mp_fail_and_middlebox() {
    let cfg = Config {
        checksum: true,
        ..Config::default()
    };
    let mut p = Pair::new_with(cfg);
    p.join(40070);
    let mut to_s = Out::new();
    p.client.send(p.m, payload(&[5; 100])).unwrap();
    p.client.flush(p.m, now(), &mut to_s);
    let (t, data) = to_s
        .iter()
        .find(|(_, g)| g.data_len() > 0)
        .expect("data")
        .clone();
    // A middlebox changed the payload: the checksum no longer matches.
    let mut dsn = None;
    let bad = rewrite_mptcp(&data, |o| match o {
        MptcpOption::Dss(mut d) => {
            if let Some(m) = d.mapping.as_mut() {
                m.checksum = m.checksum.map(|c| c ^ 0x0101);
                dsn = Some(m.dsn.expand(Dsn::new(0)));
            }
            MptcpOption::Dss(d)
        }
        // The first data may still carry MP_CAPABLE: its DSN is the sender's IDSN + 1.
        MptcpOption::MpCapable(mut c) => {
            if let MpcVariant::AckData {
                sender_key,
                checksum,
                ..
            } = &mut c.variant
            {
                *checksum = checksum.map(|x| x ^ 0x0101);
                dsn = Some(derive(*sender_key).idsn + 1);
            }
            MptcpOption::MpCapable(c)
        }
        o => o,
    });
    let mut out = Out::new();
    p.server
        .on_segment(flipped(&t), received(&bad), now(), &mut out);
    let rst = out
        .iter()
        .find(|(tt, g)| tt.remote == t.local && g.flags.contains(TcpFlags::RST))
        .expect("a RST on the subflow the data came on");
    let dsn = dsn.expect("a mapping");
    assert_eq!(
        mptcp(&rst.1),
        vec![
            MptcpOption::MpFail { dsn },
            MptcpOption::MpTcpRst {
                flags: 0,
                reason: reset_reason::MIDDLEBOX
            }
        ]
    );
    assert_eq!(p.server.mib().get(Mib::DataCsumErr), 1);
    assert_eq!(p.server.mib().get(Mib::MPFailTx), 1);
    assert_eq!(p.server.tcp().len(), 1, "the other subflow stays");
    assert!(!p.server.info(p.sm.unwrap()).unwrap().fallback);
}

#[test]
fn a_data_fin_on_a_checksummed_data_segment_counts_in_the_checksum() {
    let mut s = Script::new(Config {
        checksum: true,
        ..Config::default()
    });
    let m = s.m();
    s.server.send(m, payload(b"bye")).unwrap();
    s.server.close(m);
    let out = s.flush();
    let (_, data) = out.iter().find(|(_, g)| g.data_len() > 0).expect("data");
    let sum = dataplane::wire::checksum::sum(b"bye");
    let csum = dataplane::mptcp::crypto::dss_checksum(s.server_dsn(0), 1, 4, sum);
    assert_eq!(
        mptcp(data),
        vec![dss(
            Some(DsnField::Bits32(s.client_dsn(0).low32())),
            Some(Mapping::new(s.server_dsn(0), 1, 4, Some(csum))),
            true
        )]
    );
}

#[test]
fn removing_the_initial_subflows_address_moves_the_connection_to_the_join() {
    let mut p = Pair::new();
    p.join(40061);
    assert_eq!(p.client.remove_address("192.0.2.1".parse().unwrap()), 1);
    let mut to_s = Out::new();
    p.client.flush(p.m, now(), &mut to_s);
    // REMOVE_ADDR with id 0 (the initial subflow's address) on the join.
    let (_, rm) = to_s
        .iter()
        .find(|(t, _)| t.local.port() == 40061)
        .expect("a segment on the join");
    assert!(
        mptcp(rm).contains(&MptcpOption::RemoveAddr(RemoveAddr::new(&[0]).unwrap())),
        "{:?}",
        mptcp(rm)
    );
    assert!(to_s
        .iter()
        .any(|(t, g)| t.local.port() == 40000 && g.flags.contains(TcpFlags::RST)));
    p.exchange(to_s);
    assert_eq!(p.server.mib().get(Mib::RmAddr), 1);
    assert_eq!(p.server.tcp().len(), 1);
    let ports = p.server_sends(5);
    assert!(
        !ports.is_empty() && ports.iter().all(|&pt| pt == 40061),
        "{ports:?}"
    );
    assert_eq!(p.client.info(p.m).unwrap().phase, Phase::Established);
}

#[test]
fn mp_fastclose_on_one_subflow_resets_every_subflow() {
    let mut p = Pair::new();
    p.join(40080);
    assert_eq!(p.server.tcp().len(), 2);
    let key = p.server_key;
    let out = p.forge_ack(40000, &[MptcpOption::MpFastclose { receiver_key: key }]);
    for port in [40000, 40080] {
        let (_, rst) = out
            .iter()
            .find(|(t, g)| t.remote.port() == port && g.flags.contains(TcpFlags::RST))
            .unwrap_or_else(|| panic!("a RST on {port}: {out:?}"));
        assert_eq!(reset_reason_of(rst), Some(reset_reason::UNSPECIFIED));
    }
    assert_eq!(p.server.mib().get(Mib::MPFastcloseRx), 1);
    assert_eq!(p.server.tcp().len(), 0);
    let sm = p.sm.unwrap();
    assert!(p.server.take_events(sm).contains(Events::RESET));
}

#[test]
fn a_rst_carrying_mp_fastclose_and_mp_tcprst_is_counted_and_ends_the_connection() {
    for right_key in [true, false] {
        let mut s = Script::new(Config::default());
        let key = if right_key {
            s.server_key
        } else {
            s.server_key ^ 1
        };
        let out = s.send(
            TcpFlags::RST | TcpFlags::ACK,
            b"",
            &[
                MptcpOption::MpFastclose { receiver_key: key },
                MptcpOption::MpTcpRst {
                    flags: 0,
                    reason: reset_reason::UNSPECIFIED,
                },
            ],
        );
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(s.server.mib().get(Mib::MPRstRx), 1);
        assert_eq!(s.server.mib().get(Mib::MPFastcloseRx), u64::from(right_key));
        // A RST without a valid MP_FASTCLOSE ends only the subflow (Linux propagates
        // subflow errors only on fallen-back connections): the connection waits
        // `close_timeout` for a join.
        assert_eq!(
            s.events.contains(Events::RESET),
            right_key,
            "{:?}",
            s.events
        );
        assert_eq!(s.server.orphans(), usize::from(!right_key));
        assert_eq!(s.server.tcp().len(), 0);
    }
}
