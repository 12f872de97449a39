//! Per-connection configuration.

use super::cc::CcAlgorithm;
use std::time::Duration;

/// Bytes of IPv4 + TCP headers without options.
pub const IPV4_TCP_HEADERS: u16 = 40;
/// Bytes of IPv6 + TCP headers without options.
pub const IPV6_TCP_HEADERS: u16 = 60;
/// MSS assumed when an IPv4 peer sends none (RFC 9293 §3.7.1).
pub const DEFAULT_MSS_V4: u16 = 536;
/// MSS assumed when an IPv6 peer sends none (RFC 8200 §8.3).
pub const DEFAULT_MSS_V6: u16 = 1220;
/// Smallest MSS accepted from a peer (Linux's `TCP_MIN_SND_MSS`, below which an attacker
/// could make us send tiny segments).
pub const MIN_MSS: u16 = 48;
/// Largest window scale shift (RFC 7323 §2.3).
pub const MAX_WINDOW_SCALE: u8 = 14;

/// Settings of one connection; the table hands a copy to each.
#[derive(Clone, Debug)]
pub struct Config {
    /// MSS we announce and the largest we send on IPv4: at most the port MTU minus the
    /// IPv4 and TCP headers, see [`Config::mss_for_mtu`]. IPv6 connections use 20 bytes
    /// less ([`Config::for_family`]).
    pub mss: u16,
    /// Window scale shift we offer (≤ 14).
    pub window_scale: u8,
    /// Offer and accept SACK.
    pub sack: bool,
    /// Offer and accept timestamps.
    pub timestamps: bool,
    /// Receive budget in bytes: the advertised window is what is left of it after the
    /// in-order data not yet taken by the application.
    pub recv_budget: u32,
    /// Send budget in bytes: queued plus unacknowledged data above which `send` refuses.
    pub send_budget: u32,
    /// Initial congestion window, in segments (RFC 6928).
    pub initial_cwnd: u32,
    /// Congestion control for new connections.
    pub cc: CcAlgorithm,
    /// RTO before the first RTT sample (RFC 6298: 1 s).
    pub rto_initial: Duration,
    /// Lower bound of the RTO (Linux: 200 ms).
    pub rto_min: Duration,
    /// Upper bound of the RTO.
    pub rto_max: Duration,
    /// SYN / SYN-ACK retransmissions before giving up.
    pub syn_retries: u8,
    /// Consecutive data retransmission timeouts before giving up.
    pub data_retries: u8,
    /// Delayed-ACK timeout (RFC 9293 says < 0.5 s; Linux 40 ms).
    pub delayed_ack: Duration,
    /// Idle time before keepalive probes start, `None` to disable keepalive.
    pub keepalive_idle: Option<Duration>,
    /// Time between unanswered keepalive probes.
    pub keepalive_interval: Duration,
    /// Unanswered keepalive probes before the connection is dropped.
    pub keepalive_probes: u8,
    /// TIME_WAIT duration (2 MSL).
    pub time_wait: Duration,
    /// Out-of-order segments held per connection; more are dropped and counted.
    pub max_ooo_segments: usize,
    /// Challenge ACKs (RFC 5961) a connection sends per second at most.
    pub challenge_acks_per_sec: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mss: 1460,
            window_scale: 7,
            sack: true,
            timestamps: true,
            recv_budget: 1 << 20,
            send_budget: 1 << 20,
            initial_cwnd: 10,
            cc: CcAlgorithm::Cubic,
            rto_initial: Duration::from_secs(1),
            rto_min: Duration::from_millis(200),
            rto_max: Duration::from_secs(60),
            syn_retries: 6,
            data_retries: 15,
            delayed_ack: Duration::from_millis(40),
            keepalive_idle: None,
            keepalive_interval: Duration::from_secs(75),
            keepalive_probes: 9,
            time_wait: Duration::from_secs(60),
            max_ooo_segments: 512,
            challenge_acks_per_sec: 10,
        }
    }
}

impl Config {
    /// The MSS for a path of `mtu` bytes (IP packet size), IPv4 or IPv6.
    pub fn mss_for_mtu(mtu: u16, ipv6: bool) -> u16 {
        let headers = if ipv6 {
            IPV6_TCP_HEADERS
        } else {
            IPV4_TCP_HEADERS
        };
        mtu.saturating_sub(headers).max(MIN_MSS)
    }

    /// The configuration of one connection of the given family: `mss` is set for IPv4
    /// headers, IPv6 headers are 20 bytes longer.
    pub fn for_family(&self, ipv6: bool) -> Config {
        let mut c = self.clone();
        if ipv6 {
            c.mss = c
                .mss
                .saturating_sub(IPV6_TCP_HEADERS - IPV4_TCP_HEADERS)
                .max(MIN_MSS);
        }
        c
    }

    /// This configuration with the MSS clamped to a path of `mtu` bytes.
    pub fn clamp_to_mtu(mut self, mtu: u16, ipv6: bool) -> Self {
        self.mss = self.mss.min(Self::mss_for_mtu(mtu, ipv6));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_connections_announce_twenty_bytes_less() {
        let c = Config::default().clamp_to_mtu(1500, false);
        assert_eq!(c.mss, 1460);
        assert_eq!(c.for_family(false).mss, 1460);
        assert_eq!(c.for_family(true).mss, 1440);
        let tiny = Config {
            mss: MIN_MSS,
            ..Config::default()
        };
        assert_eq!(tiny.for_family(true).mss, MIN_MSS, "never below the floor");
    }
}
