#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Connection table: listeners, RST for strays, the bounded half-open set, SYN cookies,
//! TIME-WAIT reuse and the timer wheel.

use dataplane::port::heap::HeapShared;
use dataplane::seq::TcpSeq;
use dataplane::tcp::{
    Config, Events, FourTuple, Instant, NoHook, Secrets, SegOptions, SegmentIn, SegmentOut, State,
    Table, TableConfig,
};
use dataplane::wire::tcp::{TcpFlags, TcpOption, TcpOptions};
use std::time::Duration;

type S = HeapShared;
type Out = Vec<(FourTuple, SegmentOut<S>)>;

const SYN: TcpFlags = TcpFlags::SYN;
const ACK: TcpFlags = TcpFlags::ACK;

fn tuple(port: u16) -> FourTuple {
    FourTuple {
        local: "192.0.2.1:7".parse().unwrap(),
        remote: format!("192.0.2.2:{port}").parse().unwrap(),
    }
}

fn table(cfg: TableConfig) -> Table<S, NoHook> {
    let mut t = Table::new(cfg, Secrets::new([3; 32]), Instant::default());
    t.listen("192.0.2.1:7".parse().unwrap());
    t
}

fn syn(seq: u32, ts: bool) -> SegmentIn<S> {
    let mut s = SegmentIn::bare(TcpSeq::new(seq), TcpSeq::new(0), SYN, 64240);
    s.options = SegOptions {
        mss: Some(1400),
        window_scale: Some(9),
        sack_permitted: true,
        timestamps: ts.then_some((4242, 0)),
        ..SegOptions::default()
    };
    s
}

fn ack_for(synack: &SegmentOut<S>, ts: bool) -> SegmentIn<S> {
    let mut a = SegmentIn::bare(synack.ack, synack.seq + 1, ACK, 500);
    if ts {
        let tsval = TcpOptions::new(synack.options.as_bytes())
            .find_map(|o| match o {
                Ok(TcpOption::Timestamps { tsval, .. }) => Some(tsval),
                _ => None,
            })
            .unwrap();
        a.options.timestamps = Some((4243, tsval));
    }
    a
}

#[test]
fn listener_accepts_and_reports_connected() {
    let mut t = table(TableConfig::default());
    let mut out = Out::new();
    let now = Instant::from_millis(5);
    t.on_segment(tuple(1000), syn(77, true), now, &mut out);
    assert_eq!((t.len(), t.half_open()), (1, 1));
    let (_, synack) = out.pop().unwrap();
    assert_eq!((synack.flags, synack.ack), (SYN | ACK, TcpSeq::new(78)));
    t.on_segment(tuple(1000), ack_for(&synack, true), now, &mut out);
    assert_eq!(t.half_open(), 0);
    let id = t.next_ready().unwrap();
    let c = t.get_mut(id).unwrap();
    assert_eq!(c.take_events(), Events::CONNECTED);
    assert_eq!(c.window_scales(), (9, 7));
    assert!(t.next_ready().is_none());
}

#[test]
fn strays_get_resets() {
    let mut t = table(TableConfig::default());
    let mut out = Out::new();
    let mut other = tuple(1000);
    other.local.set_port(8);
    t.on_segment(other, syn(10, false), Instant::default(), &mut out);
    let (_, rst) = out.pop().unwrap();
    assert_eq!(
        (rst.seq, rst.ack, rst.flags),
        (TcpSeq::new(0), TcpSeq::new(11), TcpFlags::RST | ACK)
    );
    // An ACK to the listener without a valid cookie.
    let a = SegmentIn::bare(TcpSeq::new(5), TcpSeq::new(999), ACK, 100);
    t.on_segment(tuple(1), a, Instant::default(), &mut out);
    let (_, rst) = out.pop().unwrap();
    assert_eq!((rst.seq, rst.flags), (TcpSeq::new(999), TcpFlags::RST));
    assert_eq!(t.stats().resets_sent, 2);
    assert_eq!(t.stats().cookies_rejected, 1);
    assert!(t.is_empty());
}

#[test]
fn half_open_is_bounded_and_evicted_oldest_first() {
    let cfg = TableConfig {
        max_half_open: 4,
        syn_cookies: false,
        ..TableConfig::default()
    };
    let mut t = table(cfg);
    let mut out = Out::new();
    for p in 0..6 {
        t.on_segment(tuple(2000 + p), syn(1, false), Instant::default(), &mut out);
    }
    assert_eq!((t.len(), t.half_open()), (4, 4));
    assert_eq!(t.stats().half_open_evicted, 2);
    assert!(t.lookup(&tuple(2000)).is_none());
    assert!(t.lookup(&tuple(2005)).is_some());
}

#[test]
fn half_open_never_evicts_established() {
    let cfg = TableConfig {
        max_conns: 2,
        syn_cookies: false,
        ..TableConfig::default()
    };
    let mut t = table(cfg);
    let mut out = Out::new();
    let now = Instant::default();
    for p in 0..2 {
        t.on_segment(tuple(p), syn(1, false), now, &mut out);
        let (_, sa) = out.pop().unwrap();
        t.on_segment(tuple(p), ack_for(&sa, false), now, &mut out);
    }
    t.on_segment(tuple(9), syn(1, false), now, &mut out);
    assert_eq!(t.stats().syns_dropped, 1);
    assert!(t.lookup(&tuple(0)).is_some() && t.lookup(&tuple(1)).is_some());
}

#[test]
fn syn_cookies_round_trip_with_options() {
    let cfg = TableConfig {
        cookie_watermark: 1,
        ..TableConfig::default()
    };
    let mut t = table(cfg);
    let mut out = Out::new();
    let now = Instant::from_millis(123_456);
    t.on_segment(tuple(1), syn(1, true), now, &mut out);
    out.clear();
    // Past the watermark: a cookie, no state.
    t.on_segment(tuple(2), syn(900, true), now, &mut out);
    assert_eq!((t.len(), t.stats().cookies_sent), (1, 1));
    let (_, sa) = out.pop().unwrap();
    // 30 s later the cookie still verifies and restores MSS, window scale and SACK.
    let later = now + Duration::from_secs(30);
    t.on_segment(tuple(2), ack_for(&sa, true), later, &mut out);
    assert_eq!(t.stats().cookies_accepted, 1);
    let id = t.lookup(&tuple(2)).unwrap();
    let c = t.get_mut(id).unwrap();
    assert_eq!(c.state(), State::Established);
    // 1400 rounds down to 1300 in Linux's table.
    assert_eq!(c.mss(), 1300);
    assert_eq!(c.window_scales(), (9, 7));
    assert_eq!(c.sack_and_timestamps(), (true, true));
    // A forged or stale cookie does not.
    let mut forged = ack_for(&sa, true);
    forged.ack += 1 << 20;
    t.on_segment(tuple(3), forged, later, &mut out);
    assert_eq!(t.stats().cookies_rejected, 1);
    let stale = ack_for(&sa, true);
    t.on_segment(tuple(2), stale.clone(), later, &mut out);
    let mut t2 = table(TableConfig {
        cookie_watermark: 0,
        ..TableConfig::default()
    });
    t2.on_segment(tuple(2), stale, now + Duration::from_secs(300), &mut out);
    assert_eq!(t2.stats().cookies_rejected, 1);
}

#[test]
fn syn_cookie_without_timestamps_keeps_only_mss() {
    let cfg = TableConfig {
        cookie_watermark: 0,
        ..TableConfig::default()
    };
    let mut t = table(cfg);
    let mut out = Out::new();
    let mut s = syn(50, false);
    s.options.mss = Some(1000);
    t.on_segment(tuple(4), s, Instant::default(), &mut out);
    let (_, sa) = out.pop().unwrap();
    assert_eq!(sa.options.as_bytes(), &[2, 4, 0x05, 0xb4]);
    t.on_segment(tuple(4), ack_for(&sa, false), Instant::default(), &mut out);
    let id = t.lookup(&tuple(4)).unwrap();
    let c = t.get_mut(id).unwrap();
    // 1000 rounds down to the table's 536.
    assert_eq!((c.mss(), c.window_scales()), (536, (0, 0)));
}

#[test]
fn closed_connections_are_freed_and_timers_drain() {
    let cfg = TableConfig {
        conn: Config {
            time_wait: Duration::from_secs(1),
            ..Config::default()
        },
        ..TableConfig::default()
    };
    let mut t = table(cfg);
    let mut out = Out::new();
    let mut now = Instant::from_millis(1);
    t.on_segment(tuple(5), syn(100, false), now, &mut out);
    let (_, sa) = out.pop().unwrap();
    t.on_segment(tuple(5), ack_for(&sa, false), now, &mut out);
    let id = t.next_ready().unwrap();
    t.get_mut(id).unwrap().take_events();
    // We close first; the peer ACKs our FIN and sends its own: TIME-WAIT.
    t.get_mut(id).unwrap().close();
    t.flush(id, now, &mut out);
    let (_, fin) = out.pop().unwrap();
    let fin_ack = SegmentIn::bare(fin.ack, fin.seq + 1, TcpFlags::FIN | ACK, 500);
    t.on_segment(tuple(5), fin_ack, now, &mut out);
    assert_eq!(t.get_mut(id).unwrap().state(), State::TimeWait);
    while t.next_ready().is_some() {}
    for _ in 0..1500 {
        now = now + Duration::from_millis(1);
        t.on_timers(now, &mut out);
    }
    let id = t.next_ready().unwrap();
    assert!(t
        .get_mut(id)
        .unwrap()
        .take_events()
        .contains(Events::CLOSED));
    t.flush(id, now, &mut out);
    assert!(t.is_empty());
    t.on_timers(now + Duration::from_secs(10), &mut out);
    assert_eq!(t.timers(), 0);
}

/// Opens a connection from `port`, closes it from our side and has the peer ACK our
/// FIN with its own: the connection's last ACK goes out and it would enter TIME-WAIT.
fn close_actively(t: &mut Table<S, NoHook>, port: u16, now: Instant, out: &mut Out) {
    t.on_segment(tuple(port), syn(100, false), now, out);
    let (_, sa) = out.pop().unwrap();
    t.on_segment(tuple(port), ack_for(&sa, false), now, out);
    let id = t.lookup(&tuple(port)).unwrap();
    t.get_mut(id).unwrap().close();
    t.flush(id, now, out);
    let (_, fin) = out.pop().unwrap();
    let fin_ack = SegmentIn::bare(fin.ack, fin.seq + 1, TcpFlags::FIN | ACK, 500);
    out.clear();
    t.on_segment(tuple(port), fin_ack, now, out);
    // The ACK of the peer's FIN goes out whether or not TIME-WAIT is kept.
    assert_eq!(out.pop().unwrap().1.flags, ACK);
}

#[test]
fn time_wait_is_bounded_and_connections_beyond_close_at_once() {
    let mut t = table(TableConfig {
        max_time_wait: 2,
        ..TableConfig::default()
    });
    let mut out = Out::new();
    let now = Instant::from_millis(1);
    for port in 10..14 {
        close_actively(&mut t, port, now, &mut out);
    }
    while let Some(id) = t.next_ready() {
        t.get_mut(id).unwrap().take_events();
        t.flush(id, now, &mut out);
    }
    // Two wait out TIME-WAIT; the other two were freed as soon as their ACK left.
    assert_eq!(t.time_wait(), 2);
    assert_eq!(t.stats().time_wait_overflow, 2);
    assert_eq!(t.len(), 2);
    for port in 10..12 {
        let id = t.lookup(&tuple(port)).unwrap();
        assert_eq!(t.get(id).unwrap().state(), State::TimeWait);
    }
    // A TIME-WAIT connection taken over by a new SYN leaves room for another.
    t.on_segment(tuple(10), syn(100_000, false), now, &mut out);
    assert_eq!(t.time_wait(), 1);
    close_actively(&mut t, 20, now, &mut out);
    assert_eq!(t.time_wait(), 2);
    assert_eq!(t.stats().time_wait_overflow, 2);
}

#[test]
fn time_wait_tuple_is_reused_by_a_newer_syn() {
    let mut t = table(TableConfig::default());
    let mut out = Out::new();
    let now = Instant::from_millis(1);
    t.on_segment(tuple(6), syn(100, false), now, &mut out);
    let (_, sa) = out.pop().unwrap();
    t.on_segment(tuple(6), ack_for(&sa, false), now, &mut out);
    let id = t.lookup(&tuple(6)).unwrap();
    t.get_mut(id).unwrap().close();
    t.flush(id, now, &mut out);
    let (_, fin) = out.pop().unwrap();
    t.on_segment(
        tuple(6),
        SegmentIn::bare(fin.ack, fin.seq + 1, TcpFlags::FIN | ACK, 500),
        now,
        &mut out,
    );
    assert_eq!(t.get_mut(id).unwrap().state(), State::TimeWait);
    out.clear();
    t.on_segment(tuple(6), syn(100_000, false), now, &mut out);
    let new = t.lookup(&tuple(6)).unwrap();
    assert_ne!(new, id);
    assert!(t.get_mut(id).is_none());
    assert_eq!(out[0].1.flags, SYN | ACK);
}

#[test]
fn syn_flood_engages_cookies_and_memory_stays_flat() {
    let cfg = TableConfig {
        max_half_open: 256,
        cookie_watermark: 128,
        ..TableConfig::default()
    };
    let mut t = table(cfg);
    let mut out = Out::new();
    let now = Instant::from_millis(10);
    for i in 0..100_000u32 {
        let tuple = FourTuple {
            local: "192.0.2.1:7".parse().unwrap(),
            remote: std::net::SocketAddr::from((
                [172, 16, (i >> 16) as u8, (i >> 8) as u8],
                i as u16,
            )),
        };
        t.on_segment(tuple, syn(i, true), now, &mut out);
        out.clear();
    }
    assert_eq!(t.half_open(), 128);
    assert_eq!(t.len(), 128);
    assert_eq!(t.stats().cookies_sent, 100_000 - 128);
    assert!(t.timers() <= 128, "{}", t.timers());
    // A legitimate client still gets in, through a cookie.
    t.on_segment(tuple(60_000), syn(5, true), now, &mut out);
    let (_, sa) = out.pop().unwrap();
    t.on_segment(tuple(60_000), ack_for(&sa, true), now, &mut out);
    let id = t.lookup(&tuple(60_000)).unwrap();
    assert_eq!(t.get_mut(id).unwrap().state(), State::Established);
}

#[test]
fn cookies_are_checked_only_while_cookies_are_being_sent() {
    use dataplane::tcp::cookie::{cookie_isn, COOKIE_VALID};
    let mut t = table(TableConfig::default());
    let mut out = Out::new();
    let secrets = Secrets::new([3; 32]);
    let now = Instant::from_millis(1_000_000);
    // A cookie that verifies (as a lucky ACK-flood guess would), with no flood under
    // way: no cookie was ever sent, so it is not even checked (Linux does the same).
    let isn = cookie_isn(&secrets, &tuple(9), TcpSeq::new(41), 1460, now);
    let ack = || SegmentIn::<S>::bare(TcpSeq::new(42), isn + 1, ACK, 500);
    t.on_segment(tuple(9), ack(), now, &mut out);
    assert_eq!(t.stats().cookies_accepted, 0);
    assert!(t.is_empty());
    // While cookies are being sent, it is accepted; long after the last one, not.
    let cfg = TableConfig {
        cookie_watermark: 0,
        ..TableConfig::default()
    };
    let mut t = table(cfg.clone());
    t.on_segment(tuple(10), syn(1, false), now, &mut out);
    t.on_segment(tuple(9), ack(), now, &mut out);
    assert_eq!(t.stats().cookies_accepted, 1);
    let mut t = table(cfg);
    t.on_segment(tuple(10), syn(1, false), now, &mut out);
    let later = now + COOKIE_VALID + Duration::from_secs(1);
    let isn = cookie_isn(&secrets, &tuple(9), TcpSeq::new(41), 1460, later);
    let ack = SegmentIn::<S>::bare(TcpSeq::new(42), isn + 1, ACK, 500);
    t.on_segment(tuple(9), ack, later, &mut out);
    assert_eq!(t.stats().cookies_accepted, 0);
}

/// The MSS option of `seg`.
fn mss_of(seg: &SegmentOut<S>) -> Option<u16> {
    TcpOptions::new(seg.options.as_bytes()).find_map(|o| match o {
        Ok(TcpOption::Mss(m)) => Some(m),
        _ => None,
    })
}

#[test]
fn each_local_address_announces_and_sends_its_own_port_s_mss() {
    // 192.0.2.1 is on a port with MTU 1400, 2001:db8::1 on one with MTU 1400 too
    // (IPv6: 20 bytes more header), 192.0.2.3 on a port clamped to 1200; others use
    // the default.
    let v4: std::net::IpAddr = "192.0.2.1".parse().unwrap();
    let v6: std::net::IpAddr = "2001:db8::1".parse().unwrap();
    let clamped: std::net::IpAddr = "192.0.2.3".parse().unwrap();
    for cookies in [false, true] {
        let cfg = TableConfig {
            local_mss: vec![(v4, 1360), (v6, 1340), (clamped, 1200)],
            cookie_watermark: if cookies { 0 } else { 1024 },
            ..TableConfig::default()
        };
        let mut t = table(cfg);
        for (local, remote, want) in [
            ("192.0.2.1:7", "192.0.2.2:1000", 1360),
            ("[2001:db8::1]:7", "[2001:db8::2]:1000", 1340),
            ("192.0.2.3:7", "192.0.2.2:1000", 1200),
            ("192.0.2.4:7", "192.0.2.2:1000", 1460),
        ] {
            let tu = FourTuple {
                local: local.parse().unwrap(),
                remote: remote.parse().unwrap(),
            };
            t.listen(tu.local);
            let mut out = Out::new();
            let mut s = syn(77, true);
            s.options.mss = Some(1460);
            t.on_segment(tu, s, Instant::from_millis(5), &mut out);
            let (_, synack) = out.pop().unwrap();
            assert_eq!(mss_of(&synack), Some(want), "{local} cookies {cookies}");
            t.on_segment(
                tu,
                ack_for(&synack, true),
                Instant::from_millis(6),
                &mut out,
            );
            let id = t.next_ready().unwrap();
            // The peer's 1460 is clamped to our port's limit when we send.
            assert_eq!(t.get_mut(id).unwrap().mss(), u32::from(want), "{local}");
        }
        assert_eq!(t.stats().cookies_sent > 0, cookies);
    }
}

#[test]
fn a_connection_we_open_announces_its_local_address_s_mss() {
    let v4: std::net::IpAddr = "192.0.2.1".parse().unwrap();
    let mut t: Table<S, NoHook> = Table::new(
        TableConfig {
            local_mss: vec![(v4, 1360)],
            ..TableConfig::default()
        },
        Secrets::new([3; 32]),
        Instant::default(),
    );
    let mut out = Out::new();
    t.connect(tuple(1000), NoHook, Instant::default(), &mut out)
        .unwrap();
    let (_, syn) = out.pop().unwrap();
    assert_eq!(mss_of(&syn), Some(1360));
}
