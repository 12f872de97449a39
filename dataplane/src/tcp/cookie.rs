//! SYN cookies (RFC 4987), laid out as Linux lays them out.
//!
//! The ISN of a cookie SYN-ACK is `H1 + peer_isn + (count << 24) + ((H2(count) + mss_index)
//! mod 2^24)`, where `count` is a 64-second counter, `H1` and `H2` keyed hashes of the
//! 4-tuple, and `mss_index` picks one of four MSS values (Linux's table). With
//! timestamps, the low 6 bits of our TSval carry the window scale (4 bits, 0xf = none),
//! SACK-permitted (bit 4) and ECN (bit 5), and the ACK's TSecr brings them back.

use super::config::Config;
use super::payload::Payload;
use super::secrets::{Purpose, Secrets};
use super::segment::{FourTuple, PathTx, SegOptions, SegmentIn, SegmentOut};
use super::time::Instant;
use crate::port::SharedBuf;
use crate::seq::TcpSeq;
use crate::wire::tcp::{OptionsBuf, TcpFlags};

/// Linux's IPv4 cookie MSS table.
const MSS_V4: [u16; 4] = [536, 1300, 1440, 1460];
/// Linux's IPv6 cookie MSS table.
const MSS_V6: [u16; 4] = [1220, 1420, 1440, 8940];
/// Bits of the cookie below the counter.
const COUNT_SHIFT: u32 = 24;
/// Mask of the hashed data part.
const DATA_MASK: u32 = (1 << COUNT_SHIFT) - 1;
/// Length of one counter period, in seconds.
const PERIOD_SECS: u64 = 64;
/// Oldest acceptable counter age, in periods (Linux's MAX_SYNCOOKIE_AGE).
const MAX_AGE: u32 = 2;
/// Low TSval bits carrying options.
const TS_OPT_MASK: u32 = 0x3f;
/// "No window scale" in the TSval's scale field.
const TS_NO_WSCALE: u32 = 0xf;
/// SACK-permitted bit in the TSval.
const TS_SACK: u32 = 1 << 4;

/// How long after the last cookie SYN-ACK a cookie ACK is still worth checking: the
/// oldest cookie [`check_cookie`] accepts. Linux likewise checks cookies only while it
/// recently sent some, so an ACK flood cannot guess its way in at other times.
pub const COOKIE_VALID: std::time::Duration =
    std::time::Duration::from_secs((MAX_AGE as u64 + 1) * PERIOD_SECS);

fn count(now: Instant) -> u32 {
    (now.as_millis() / 1000 / PERIOD_SECS) as u32
}

fn table(tuple: &FourTuple) -> &'static [u16; 4] {
    if tuple.is_ipv6() {
        &MSS_V6
    } else {
        &MSS_V4
    }
}

/// The cookie ISN for a SYN from `tuple` with sequence `peer_isn` and MSS `mss`.
pub fn cookie_isn(
    secrets: &Secrets,
    tuple: &FourTuple,
    peer_isn: TcpSeq,
    mss: u16,
    now: Instant,
) -> TcpSeq {
    let t = table(tuple);
    // The largest table entry not above the peer's MSS (the smallest as a floor).
    let idx = t.iter().rposition(|&m| m <= mss).unwrap_or(0) as u32;
    let c = count(now);
    let h1 = secrets.hash(Purpose::CookieTuple, tuple, 0);
    let h2 = secrets.hash(Purpose::CookieCount, tuple, c);
    TcpSeq::new(
        h1.wrapping_add(peer_isn.get())
            .wrapping_add(c << COUNT_SHIFT)
            .wrapping_add(h2.wrapping_add(idx) & DATA_MASK),
    )
}

/// Checks the cookie an ACK returns (`ack.ack - 1`) and recovers the peer's MSS.
pub fn check_cookie(
    secrets: &Secrets,
    tuple: &FourTuple,
    ack: &SegmentIn<impl SharedBuf>,
    now: Instant,
) -> Option<u16> {
    let cookie = (ack.ack - 1).get();
    let peer_isn = (ack.seq - 1).get();
    let h1 = secrets.hash(Purpose::CookieTuple, tuple, 0);
    let rest = cookie.wrapping_sub(h1).wrapping_sub(peer_isn);
    let c_now = count(now);
    let age = c_now.wrapping_sub(rest >> COUNT_SHIFT) & (u32::MAX >> COUNT_SHIFT);
    if age > MAX_AGE {
        return None;
    }
    let c = c_now.wrapping_sub(age);
    let h2 = secrets.hash(Purpose::CookieCount, tuple, c);
    let idx = (rest.wrapping_sub(h2) & DATA_MASK) as usize;
    table(tuple).get(idx).copied()
}

/// Our TSval for a cookie SYN-ACK: the clock with its low bits replaced by the options,
/// never ahead of the clock.
pub fn cookie_tsval(ts_clock: u32, syn: &SegOptions) -> u32 {
    let ws = syn
        .window_scale
        .map_or(TS_NO_WSCALE, |s| u32::from(s.min(14)));
    let opts = ws | if syn.sack_permitted { TS_SACK } else { 0 };
    let ts = (ts_clock & !TS_OPT_MASK) | opts;
    if ts.wrapping_sub(ts_clock) as i32 > 0 {
        ts.wrapping_sub(TS_OPT_MASK + 1)
    } else {
        ts
    }
}

/// The SYN options a cookie ACK restores: MSS, and from the echoed TSval (if any)
/// window scale and SACK-permitted.
pub fn restored_options(mss: u16, ack: &SegmentIn<impl SharedBuf>) -> SegOptions {
    let mut o = SegOptions {
        mss: Some(mss),
        ..SegOptions::default()
    };
    if let Some((tsval, tsecr)) = ack.options.timestamps {
        let ws = tsecr & 0xf;
        o.window_scale = (ws != TS_NO_WSCALE).then_some(ws as u8);
        o.sack_permitted = tsecr & TS_SACK != 0;
        o.timestamps = Some((tsval, tsecr));
    }
    o
}

/// The stateless SYN-ACK answering `syn` with a cookie.
pub fn cookie_syn_ack<S: SharedBuf>(
    cfg: &Config,
    secrets: &Secrets,
    tuple: &FourTuple,
    syn: &SegmentIn<S>,
    now: Instant,
) -> SegmentOut<S> {
    let default_mss = if tuple.is_ipv6() { 1220 } else { 536 };
    let mss = syn.options.mss.unwrap_or(default_mss);
    let isn = cookie_isn(secrets, tuple, syn.seq, mss, now);
    let mut options = OptionsBuf::new();
    // These pushes fit the 40-byte budget in this order.
    let _ = options.push_mss(cfg.for_family(tuple.is_ipv6()).mss);
    // Without timestamps there is nowhere to keep window scale and SACK: not offered.
    let ts = cfg.timestamps && syn.options.timestamps.is_some();
    let sack = ts && cfg.sack && syn.options.sack_permitted;
    let ws = ts && cfg.window_scale > 0 && syn.options.window_scale.is_some();
    if let (true, Some((peer_tsval, _))) = (ts, syn.options.timestamps) {
        let clock = (now.as_millis() as u32).wrapping_add(secrets.ts_offset(tuple));
        let mut encoded = syn.options.clone();
        encoded.sack_permitted = sack;
        if !ws {
            encoded.window_scale = None;
        }
        let _ = options.push_timestamps(cookie_tsval(clock, &encoded), peer_tsval, sack);
    }
    if ws {
        let _ = options.push_window_scale(cfg.window_scale);
    }
    SegmentOut {
        seq: isn,
        ack: syn.seq + 1,
        flags: TcpFlags::SYN | TcpFlags::ACK,
        window: cfg.recv_budget.min(u32::from(u16::MAX)) as u16,
        options,
        payload: None::<Payload<S>>,
        path: PathTx::None,
    }
}
