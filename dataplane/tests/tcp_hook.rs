#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The MPTCP hooks: options added to every segment, options and data seen on the way
//! in, and a reset on request (the coupled increase is covered in `tcp::cc`).

use dataplane::port::heap::{HeapPool, HeapShared};
use dataplane::port::PacketBuf;
use dataplane::seq::TcpSeq;
use dataplane::tcp::{
    Config, Connection, Delivery, Events, FourTuple, Hook, Instant, Payload, SegOptions, SegmentIn,
    SegmentMeta, SegmentOut, State, Verdict,
};
use dataplane::wire::tcp::{OptionsBuf, TcpFlags};

type S = HeapShared;
type Out = Vec<(FourTuple, SegmentOut<S>)>;

#[derive(Default)]
struct Recorder {
    added: u32,
    seen_options: Vec<Vec<u8>>,
    data: Vec<(TcpSeq, usize)>,
    reset_on_data: bool,
}

impl Hook<S> for Recorder {
    type Ctx = ();

    fn accept(_: &mut (), _: &FourTuple, syn: &SegmentIn<S>) -> Result<Self, OptionsBuf> {
        Ok(Recorder {
            seen_options: vec![syn.raw_options.to_vec()],
            ..Recorder::default()
        })
    }

    fn accept_cookie(_: &mut (), _: &FourTuple, _: &SegmentIn<S>) -> Result<Self, OptionsBuf> {
        Ok(Recorder::default())
    }

    fn option_space(&self, _data: bool) -> usize {
        8
    }

    fn add_options(&mut self, _: &mut (), opts: &mut OptionsBuf, meta: &SegmentMeta) {
        assert!(opts.remaining() >= 8 || meta.flags.contains(TcpFlags::SYN));
        self.added += 1;
    }

    fn on_options(&mut self, _: &mut (), raw: &[u8], _meta: &SegmentMeta) -> Verdict {
        self.seen_options.push(raw.to_vec());
        Verdict::Continue
    }

    fn on_data(&mut self, _: &mut (), seq: TcpSeq, payload: Payload<S>) -> Delivery<S> {
        self.data.push((seq, payload.len()));
        if self.reset_on_data {
            Delivery::Reset
        } else {
            Delivery::Deliver(payload)
        }
    }
}

fn established(reset_on_data: bool) -> (Connection<S, Recorder>, Out) {
    let tuple = FourTuple {
        local: "192.0.2.1:80".parse().unwrap(),
        remote: "192.0.2.2:4000".parse().unwrap(),
    };
    let mut syn = SegmentIn::bare(TcpSeq::new(500), TcpSeq::new(0), TcpFlags::SYN, 65535);
    syn.options = SegOptions {
        mss: Some(1460),
        ..SegOptions::default()
    };
    syn.raw_options.extend([30u8, 4, 0x01, 0x81]);
    // As a listener would: the hook sees the SYN when it is made.
    let mut hook = <Recorder as Hook<S>>::accept(&mut (), &tuple, &syn).unwrap();
    hook.reset_on_data = reset_on_data;
    let cfg = Config {
        timestamps: false,
        ..Config::default()
    };
    let now = Instant::default();
    let mut c = Connection::accept(&cfg, tuple, &syn, TcpSeq::new(9000), 0, hook, now);
    let mut out = Vec::new();
    c.flush(now, &mut out);
    let mut ack = SegmentIn::bare(TcpSeq::new(501), TcpSeq::new(9001), TcpFlags::ACK, 65535);
    c.on_segment(&mut ack, now, &mut out);
    (c, out)
}

#[test]
fn hooks_see_syn_options_and_data_and_add_to_every_segment() {
    let pool = HeapPool::new(8);
    let (mut c, mut out) = established(false);
    assert_eq!(c.hook().seen_options[0], [30, 4, 0x01, 0x81]);
    assert_eq!(c.hook().added, 1, "SYN-ACK");
    let mut d = SegmentIn::bare(TcpSeq::new(501), TcpSeq::new(9001), TcpFlags::ACK, 65535);
    d.payload = Some(Payload::new(
        pool.alloc_from(&[1; 100]).unwrap().into_shared(),
    ));
    c.on_segment(&mut d, Instant::default(), &mut out);
    assert_eq!(c.hook().data, [(TcpSeq::new(501), 100)]);
    // Data segments leave the hook its option space: MSS 1460 - 8.
    let p = Payload::new(pool.alloc_from(&[2; 2000]).unwrap().into_shared());
    c.send(p).unwrap();
    out.clear();
    c.flush(Instant::default(), &mut out);
    assert_eq!(out[0].1.data_len(), 1452);
    assert!(c.hook().added >= 3);
}

#[test]
fn hook_can_reset() {
    let pool = HeapPool::new(8);
    let (mut c, mut out) = established(true);
    out.clear();
    let mut d = SegmentIn::bare(TcpSeq::new(501), TcpSeq::new(9001), TcpFlags::ACK, 65535);
    d.payload = Some(Payload::new(
        pool.alloc_from(&[1; 10]).unwrap().into_shared(),
    ));
    c.on_segment(&mut d, Instant::default(), &mut out);
    assert_eq!(c.state(), State::Closed);
    assert!(c.take_events().contains(Events::RESET));
    assert_eq!(out[0].1.flags, TcpFlags::RST);
}
