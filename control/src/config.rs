//! The TOML configuration: what it may contain, and the checks that every error names
//! its key.
//!
//! Parsing is serde with `deny_unknown_fields` (a misspelt key is an error, not a silent
//! default); [`Config::validate`] then checks what types cannot: addresses unique across
//! ports, next hops inside a port's subnet, lcores distinct, and so on.

use anyhow::{bail, Context};
use dataplane::wire::ethernet::MacAddr;
use ipnet::{Ipv4Net, Ipv6Net};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Worker lcores and buffer pools.
    #[serde(default)]
    pub dataplane: DataplaneConfig,
    /// EAL options that are not derived from the rest of the file.
    #[serde(default)]
    pub eal: EalConfig,
    /// The operator interface.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The gateway's network ports, in the order the workers poll them.
    #[serde(default)]
    pub ports: Vec<PortConfig>,
    /// Diagnostic TCP services (discard, echo, source) for testing a path.
    #[serde(default)]
    pub diag: Vec<DiagConfig>,
    /// MPTCP settings.
    #[serde(default)]
    pub mptcp: MptcpConfig,
    /// Relay limits.
    #[serde(default)]
    pub relay: RelayConfig,
    /// Relay listeners: where the gateway accepts connections and where it relays them.
    #[serde(default)]
    pub listeners: Vec<ListenerConfig>,
    /// The Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// `[metrics]`: the Prometheus endpoint (`/metrics`, `/healthz`, `/readyz`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address and port to serve on, on the host's own network stack (e.g.
    /// `127.0.0.1:9469`); absent: no endpoint.
    #[serde(default, deserialize_with = "de_socket_addr")]
    pub listen: Option<SocketAddr>,
}

fn de_socket_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "'{text}' is not an IP address and port (e.g. 127.0.0.1:9469 or [::1]:9469)"
        ))
    })
}

/// `[relay]`: limits of the relay.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// Connection pairs relayed at once per worker.
    pub max_pairs: u32,
    /// Seconds a backend that failed a handshake is skipped.
    pub backend_hold_down: u32,
    /// Local ports of the connections and subflows the gateway opens, `[first, last]`.
    pub local_ports: [u16; 2],
    /// Plain-TCP legs offer an MSS smaller by a DSS option's room, so each segment
    /// they receive leaves on an MPTCP subflow whole instead of as a full segment plus
    /// a tiny one (payload moves by reference and is never merged).
    pub fit_mss: bool,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            max_pairs: 65_536,
            backend_hold_down: 10,
            local_ports: [32_768, 60_999],
            fit_mss: true,
        }
    }
}

/// `[[listeners]]`: a relay listener, on an own address (`listen`) or transparent.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Address and port to accept on (an address of a port); not with `transparent`.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// `concentrator` (accepts MPTCP or TCP, opens plain TCP to a backend) or `edge`
    /// (opens MPTCP to a backend, adding subflows by `mptcp.path_manager`).
    pub role: Role,
    /// Where to relay, used in turn; unreachable ones are skipped for
    /// `relay.backend_hold_down` seconds. A transparent listener relays to each
    /// connection's original destination without them; an edge one may name
    /// concentrators to send everything to instead.
    #[serde(default)]
    pub backends: Vec<SocketAddr>,
    /// Take connections to any foreign destination routed through the gateway on
    /// `ports`, answering as that destination.
    #[serde(default)]
    pub transparent: bool,
    /// Transparent only: the ports (names) the clients' traffic arrives on.
    #[serde(default)]
    pub ports: Vec<String>,
    /// Transparent only: the destination ports taken, each a port or a
    /// `[first, last]` range; absent: all.
    #[serde(default)]
    pub destination_ports: Vec<PortRange>,
}

/// A TCP port or an inclusive range of them (`80` or `[8000, 8999]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum PortRange {
    /// One port.
    One(u16),
    /// `[first, last]`.
    Range([u16; 2]),
}

impl PortRange {
    /// The range as `(first, last)`.
    pub fn bounds(self) -> (u16, u16) {
        match self {
            PortRange::One(p) => (p, p),
            PortRange::Range([a, b]) => (a, b),
        }
    }
}

/// The gateway's roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The server side of link bonding: terminates MPTCP, relays to plain TCP.
    Concentrator,
    /// The client side: turns plain TCP into MPTCP over the WAN ports.
    Edge,
}

/// `mptcp.path_manager`: which subflows connections the gateway opens add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathManagerConfig {
    /// One subflow from each `subflow` port address to the peer.
    Default,
    /// A subflow from every `subflow`/`fullmesh` port address to every known peer
    /// address.
    Fullmesh,
    /// `mptcp.ndiffports` subflows over the first address pair.
    Ndiffports,
}

/// `[mptcp]`: MPTCP settings, named like Linux's `net.mptcp.*` sysctls and
/// `ip mptcp limits`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MptcpConfig {
    /// Listeners accept MPTCP (`net.mptcp.enabled`); otherwise everything is plain TCP.
    pub enabled: bool,
    /// Ask for DSS checksums (`net.mptcp.checksum_enabled`); used if either side asks.
    pub checksum_enabled: bool,
    /// Additional subflows per connection (`ip mptcp limits set subflows`), 0..=8.
    pub subflows: u8,
    /// Addresses the peer announces that are accepted for new subflows per
    /// connection (`ip mptcp limits set add_addr_accepted`), 0..=8.
    pub add_addr_accepted: u8,
    /// Peers may join at the initial subflow's address and port
    /// (`net.mptcp.allow_join_initial_addr_port`); false sets MP_CAPABLE's flag C.
    pub allow_join_initial_addr_port: bool,
    /// `default`, `roundrobin`, `redundant` or `blest`.
    pub scheduler: SchedulerConfig,
    /// Coupled congestion control across subflows: `none` (each subflow CUBIC), `lia`
    /// or `olia`.
    pub coupled_cc: CouplingConfig,
    /// SYNs with MP_CAPABLE before retrying without it.
    pub syn_retrans_before_tcp_fallback: u8,
    /// Connection-level timeouts before a subflow counts as stale.
    pub stale_loss_cnt: u8,
    /// Connection-level receive buffer (the shared window), bytes.
    pub recv_buffer: u32,
    /// Connection-level send buffer, bytes.
    pub send_buffer: u32,
    /// Seconds between ADD_ADDR retransmissions until echoed (`add_addr_timeout`).
    pub add_addr_timeout: u32,
    /// The subflows connections the gateway opens add (the edge role).
    pub path_manager: PathManagerConfig,
    /// Subflows in all with `path_manager = "ndiffports"`, 1..=9.
    pub ndiffports: u8,
    /// Seconds an established connection outlives its last subflow, waiting for the
    /// peer to join again before it is reset (`net.mptcp.close_timeout`); 0: at once.
    pub close_timeout: u32,
}

impl Default for MptcpConfig {
    fn default() -> Self {
        MptcpConfig {
            enabled: true,
            checksum_enabled: false,
            subflows: 2,
            add_addr_accepted: 0,
            allow_join_initial_addr_port: true,
            scheduler: SchedulerConfig::Default,
            coupled_cc: CouplingConfig::None,
            syn_retrans_before_tcp_fallback: 2,
            stale_loss_cnt: 4,
            recv_buffer: 4 << 20,
            send_buffer: 4 << 20,
            add_addr_timeout: 120,
            path_manager: PathManagerConfig::Default,
            ndiffports: 2,
            close_timeout: 60,
        }
    }
}

/// Path-manager flags of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortFlag {
    /// Announce the port's addresses with ADD_ADDR.
    Signal,
    /// Open subflows from the port's addresses (connections the gateway opens).
    Subflow,
    /// Like `subflow`, towards every address the peer has (`fullmesh` path manager).
    Fullmesh,
    /// Subflows from the port's addresses are backups (MP_JOIN with the B flag).
    Backup,
}

/// The packet schedulers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedulerConfig {
    /// Lowest RTT with room; backups only when nothing else is usable.
    Default,
    /// In turn.
    Roundrobin,
    /// Every segment on every subflow.
    Redundant,
    /// Lowest RTT, skipping subflows that would block the window.
    Blest,
}

/// Coupled congestion control choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CouplingConfig {
    /// Each subflow on its own.
    None,
    /// LIA (RFC 6356).
    Lia,
    /// OLIA.
    Olia,
}

/// `[[diag]]`: a diagnostic TCP service on one of the gateway's addresses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagConfig {
    /// Address and port to listen on, e.g. `192.0.2.1:9` or `[2001:db8::1]:9`.
    pub listen: SocketAddr,
    /// `discard` (read and drop), `echo` (send back) or `source` (stream data).
    pub mode: DiagModeConfig,
}

/// The modes of a diagnostic service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiagModeConfig {
    /// Read and drop everything (RFC 863).
    Discard,
    /// Send back everything read (RFC 862).
    Echo,
    /// Stream data until the peer closes.
    Source,
}

/// Default `[dataplane] flow_rules`: far below the exact-match tables of NICs with
/// flow steering (thousands to millions of entries), enough for the joins of
/// thousands of connections.
pub const DEFAULT_FLOW_RULES: u32 = 4096;
/// Most `[dataplane] flow_rules`.
pub const MAX_FLOW_RULES: u32 = 1 << 20;

/// `[dataplane]`: lcores and mbuf pools.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataplaneConfig {
    /// The EAL main lcore; the control thread runs on it.
    pub main_lcore: u32,
    /// One poll-mode worker per listed lcore; each polls one queue of every port.
    pub workers: Vec<u32>,
    /// Mbufs in each worker's pool.
    pub mbufs_per_worker: u32,
    /// Per-lcore mempool cache size.
    pub mempool_cache: u32,
    /// RX and TX descriptors per queue.
    pub descriptors: u16,
    /// `rte_flow` rules per port that steer joined subflows to their owner worker's
    /// queue (ports whose PMD takes them, with several workers); 0: none.
    pub flow_rules: u32,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        Self {
            main_lcore: 0,
            workers: vec![1],
            mbufs_per_worker: 16_383,
            mempool_cache: 256,
            descriptors: 1024,
            flow_rules: DEFAULT_FLOW_RULES,
        }
    }
}

/// `[eal]`: options for DPDK's environment abstraction layer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EalConfig {
    /// Run without hugepages (`--no-huge`), for labs and tests.
    pub no_huge: bool,
    /// Memory to reserve, MiB (`-m`).
    pub memory_mb: Option<u32>,
    /// Runtime-file prefix (`--file-prefix`); unique per instance on one host.
    pub file_prefix: Option<String>,
    /// Skip the PCI bus scan (`--no-pci`): only vdevs are used.
    pub no_pci: bool,
    /// Lcores run on another CPU than their number, as `[lcore, cpu]` pairs (e.g.
    /// `[[2, 1]]`: two workers sharing CPU 1 on a small machine); DPDK's `--lcores`.
    pub lcore_cpus: Vec<[u32; 2]>,
    /// Further EAL arguments, passed through verbatim before those given after `--`.
    pub args: Vec<String>,
}

/// `[admin]`: the operator interface.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Path of the admin Unix socket that `mpgw stats` talks to.
    pub socket: PathBuf,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            socket: PathBuf::from("/run/mpgw/mpgw.sock"),
        }
    }
}

/// `[log]`: logging.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `mpgw=debug`; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}

/// `[[ports]]`: one network port.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// The operator's name for the port, used in logs, stats and other keys.
    pub name: String,
    /// A PCI address (`0000:01:00.0`) or a DPDK vdev (`net_af_packet0,iface=gd0`).
    pub device: String,
    /// The MAC address to use; default: the device's own.
    #[serde(default, deserialize_with = "de_mac")]
    pub mac: Option<MacAddr>,
    /// IPv4 addresses with their prefix length, e.g. `192.0.2.1/24`.
    #[serde(default)]
    pub ipv4: Vec<Ipv4Net>,
    /// IPv6 addresses with their prefix length, e.g. `2001:db8::1/64`.
    #[serde(default)]
    pub ipv6: Vec<Ipv6Net>,
    /// Default IPv4 next hop through this port.
    pub gateway4: Option<Ipv4Addr>,
    /// Default IPv6 next hop through this port.
    pub gateway6: Option<Ipv6Addr>,
    /// Layer-3 MTU.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// Path-manager flags, as `ip mptcp endpoint` names them: `signal` announces the
    /// port's addresses (ADD_ADDR) on every MPTCP connection accepted elsewhere.
    #[serde(default)]
    pub flags: Vec<PortFlag>,
    /// Largest TCP MSS on connections from this port's addresses, below what `mtu`
    /// allows (a tunnel further on, say).
    pub mss_clamp: Option<u16>,
    /// 802.1Q VLAN id of the port's frames (tagged on the wire), 1..=4094.
    pub vlan: Option<u16>,
}

fn default_mtu() -> u16 {
    1500
}

fn de_mac<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<MacAddr>, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!("'{text}' is not a MAC address (aa:bb:cc:dd:ee:ff)"))
    })
}

/// How a port's device is named to the EAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device<'a> {
    /// A PCI device, allowed with `-a`; its ethdev name is the address.
    Pci(&'a str),
    /// A virtual device created with `--vdev`; its ethdev name is the part before the
    /// first comma.
    Vdev {
        /// The full `--vdev` argument.
        spec: &'a str,
        /// The ethdev name.
        name: &'a str,
    },
}

impl PortConfig {
    /// How the device is given to the EAL.
    pub fn device(&self) -> Device<'_> {
        let name = self.device.split(',').next().unwrap_or_default();
        if is_pci_address(name) {
            Device::Pci(&self.device)
        } else {
            Device::Vdev {
                spec: &self.device,
                name,
            }
        }
    }
}

/// `DDDD:BB:DD.F` or `BB:DD.F`, hexadecimal.
fn is_pci_address(s: &str) -> bool {
    let parts: Vec<&str> = s.split([':', '.']).collect();
    let widths: &[usize] = match parts.len() {
        4 => &[4, 2, 2, 1],
        3 => &[2, 2, 1],
        _ => return false,
    };
    parts
        .iter()
        .zip(widths)
        .all(|(p, &w)| p.len() == w && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A configuration error tied to the key it concerns.
#[derive(Debug)]
pub struct KeyError {
    /// Dotted key path, e.g. `ports[1].ipv4[0]`.
    pub key: String,
    /// What is wrong with it.
    pub msg: String,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.msg)
    }
}

impl std::error::Error for KeyError {}

fn key_err(key: impl Into<String>, msg: impl Into<String>) -> anyhow::Error {
    KeyError {
        key: key.into(),
        msg: msg.into(),
    }
    .into()
}

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid configuration {}", path.display()))
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let cfg: Config = toml::from_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what the types alone cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        let dp = &self.dataplane;
        if dp.workers.is_empty() {
            bail!(key_err(
                "dataplane.workers",
                "at least one worker lcore is required"
            ));
        }
        let mut lcores = vec![dp.main_lcore];
        for (i, &l) in dp.workers.iter().enumerate() {
            if lcores.contains(&l) {
                bail!(key_err(
                    format!("dataplane.workers[{i}]"),
                    format!(
                        "lcore {l} is used twice (the main lcore is {})",
                        dp.main_lcore
                    )
                ));
            }
            lcores.push(l);
        }
        for (i, &[l, _]) in self.eal.lcore_cpus.iter().enumerate() {
            if !lcores.contains(&l) {
                bail!(key_err(
                    format!("eal.lcore_cpus[{i}]"),
                    format!("lcore {l} is neither the main lcore nor a worker")
                ));
            }
        }
        if dp.mbufs_per_worker < 1024 {
            bail!(key_err(
                "dataplane.mbufs_per_worker",
                "must be at least 1024"
            ));
        }
        if !dp.descriptors.is_power_of_two() || dp.descriptors < 64 {
            bail!(key_err(
                "dataplane.descriptors",
                "must be a power of two of at least 64"
            ));
        }
        if dp.flow_rules > MAX_FLOW_RULES {
            bail!(key_err(
                "dataplane.flow_rules",
                format!(
                    "at most {MAX_FLOW_RULES} rte_flow rules per port (0 turns flow steering off)"
                )
            ));
        }
        if self.ports.is_empty() {
            bail!(key_err("ports", "at least one [[ports]] entry is required"));
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut devices: HashMap<&str, usize> = HashMap::new();
        let mut addrs: HashMap<IpAddr, String> = HashMap::new();
        for (i, p) in self.ports.iter().enumerate() {
            let key = |k: &str| format!("ports[{i}].{k}");
            if p.name.is_empty()
                || !p
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                bail!(key_err(
                    key("name"),
                    "must be non-empty: letters, digits, '-' or '_'"
                ));
            }
            if let Some(j) = names.insert(&p.name, i) {
                bail!(key_err(
                    key("name"),
                    format!("'{}' is also the name of ports[{j}]", p.name)
                ));
            }
            let dev = match p.device() {
                Device::Pci(a) => a,
                Device::Vdev { name, .. } => name,
            };
            if dev.is_empty() {
                bail!(key_err(key("device"), "must name a PCI address or a vdev"));
            }
            if let Some(j) = devices.insert(dev, i) {
                bail!(key_err(
                    key("device"),
                    format!("device '{dev}' is also used by ports[{j}]")
                ));
            }
            if let Some(mac) = p.mac {
                if !mac.is_unicast() || mac == MacAddr::ZERO {
                    bail!(key_err(
                        key("mac"),
                        format!("{mac} is not a unicast address")
                    ));
                }
            }
            if p.ipv4.is_empty() && p.ipv6.is_empty() {
                bail!(key_err(
                    key("ipv4"),
                    "a port needs at least one IPv4 or IPv6 address"
                ));
            }
            for (k, net) in p.ipv4.iter().enumerate() {
                let a = net.addr();
                if a.is_unspecified()
                    || a.is_multicast()
                    || a.is_broadcast()
                    || a == net.network() && net.prefix_len() < 31
                {
                    bail!(key_err(
                        format!("ports[{i}].ipv4[{k}]"),
                        format!("{net} is not a host address")
                    ));
                }
                if let Some(prev) = addrs.insert(IpAddr::V4(a), format!("ports[{i}].ipv4[{k}]")) {
                    bail!(key_err(
                        format!("ports[{i}].ipv4[{k}]"),
                        format!("{a} is already assigned at {prev}")
                    ));
                }
            }
            for (k, net) in p.ipv6.iter().enumerate() {
                let a = net.addr();
                if a.is_unspecified() || a.is_multicast() || a.is_loopback() {
                    bail!(key_err(
                        format!("ports[{i}].ipv6[{k}]"),
                        format!("{net} is not a unicast host address")
                    ));
                }
                if let Some(prev) = addrs.insert(IpAddr::V6(a), format!("ports[{i}].ipv6[{k}]")) {
                    bail!(key_err(
                        format!("ports[{i}].ipv6[{k}]"),
                        format!("{a} is already assigned at {prev}")
                    ));
                }
            }
            if let Some(gw) = p.gateway4 {
                if !p.ipv4.iter().any(|n| n.contains(&gw)) {
                    bail!(key_err(
                        key("gateway4"),
                        format!("{gw} is not inside any of the port's IPv4 subnets")
                    ));
                }
            }
            if let Some(gw) = p.gateway6 {
                let link_local = (gw.segments()[0] & 0xffc0) == 0xfe80;
                if !link_local && !p.ipv6.iter().any(|n| n.contains(&gw)) {
                    bail!(key_err(
                        key("gateway6"),
                        format!("{gw} is neither link-local nor inside the port's IPv6 subnets")
                    ));
                }
            }
            if !(576..=9000).contains(&p.mtu) {
                bail!(key_err(
                    key("mtu"),
                    format!("{} is outside 576..=9000", p.mtu)
                ));
            }
            if let Some(mss) = p.mss_clamp {
                let max = dataplane::tcp::Config::mss_for_mtu(p.mtu, false);
                if !(536..=max).contains(&mss) {
                    bail!(key_err(
                        key("mss_clamp"),
                        format!("{mss} is outside 536..={max} (mtu {} less 40)", p.mtu)
                    ));
                }
            }
            if let Some(vlan) = p.vlan {
                if !(1..=4094).contains(&vlan) {
                    bail!(key_err(key("vlan"), format!("{vlan} is outside 1..=4094")));
                }
            }
        }
        let mut listens = HashMap::new();
        let m = &self.mptcp;
        if m.subflows > 8 {
            bail!(key_err("mptcp.subflows", "at most 8 additional subflows"));
        }
        if m.add_addr_accepted > 8 {
            bail!(key_err(
                "mptcp.add_addr_accepted",
                "at most 8 announced addresses"
            ));
        }
        if m.add_addr_timeout == 0 {
            bail!(key_err(
                "mptcp.add_addr_timeout",
                "must be at least 1 second"
            ));
        }
        if m.stale_loss_cnt == 0 {
            bail!(key_err("mptcp.stale_loss_cnt", "must be at least 1"));
        }
        if m.close_timeout > 86_400 {
            bail!(key_err(
                "mptcp.close_timeout",
                "must be at most 86400 seconds (0 resets at once)"
            ));
        }
        for (key, v) in [
            ("mptcp.recv_buffer", m.recv_buffer),
            ("mptcp.send_buffer", m.send_buffer),
        ] {
            if !(64 << 10..=1 << 30).contains(&v) {
                bail!(key_err(key, "must be between 65536 and 1073741824 bytes"));
            }
        }
        for (i, d) in self.diag.iter().enumerate() {
            let key = format!("diag[{i}].listen");
            if !addrs.contains_key(&d.listen.ip()) {
                bail!(key_err(
                    key,
                    format!("{} is not an address of any port", d.listen.ip())
                ));
            }
            if d.listen.port() == 0 {
                bail!(key_err(key, "port 0 is not a listening port"));
            }
            if let Some(other) = listens.insert(d.listen, key.clone()) {
                bail!(key_err(key, format!("{} is also {other}", d.listen)));
            }
        }
        if !(1..=9).contains(&m.ndiffports) {
            bail!(key_err("mptcp.ndiffports", "must be between 1 and 9"));
        }
        let r = &self.relay;
        if r.max_pairs == 0 {
            bail!(key_err("relay.max_pairs", "must be at least 1"));
        }
        let [first, last] = r.local_ports;
        if first < 1024 || last < first {
            bail!(key_err(
                "relay.local_ports",
                format!("[{first}, {last}] is not a range of unprivileged ports")
            ));
        }
        let workers = dp.workers.len() as u32;
        if u32::from(last - first) + 1 < 64 * workers {
            bail!(key_err(
                "relay.local_ports",
                format!(
                    "at least {} ports are needed for {workers} workers",
                    64 * workers
                )
            ));
        }
        for (i, l) in self.listeners.iter().enumerate() {
            let key = |k: &str| format!("listeners[{i}].{k}");
            if l.transparent {
                self.check_transparent(i, l)?;
            } else {
                let Some(listen) = l.listen else {
                    bail!(key_err(
                        key("listen"),
                        "an address and port is required (or transparent = true)"
                    ));
                };
                for (k, set) in [
                    ("ports", !l.ports.is_empty()),
                    ("destination_ports", !l.destination_ports.is_empty()),
                ] {
                    if set {
                        bail!(key_err(key(k), "only for a transparent listener"));
                    }
                }
                if !addrs.contains_key(&listen.ip()) {
                    bail!(key_err(
                        key("listen"),
                        format!("{} is not an address of any port", listen.ip())
                    ));
                }
                if listen.port() == 0 {
                    bail!(key_err(key("listen"), "port 0 is not a listening port"));
                }
                if (first..=last).contains(&listen.port()) {
                    bail!(key_err(
                        key("listen"),
                        format!("port {} lies in relay.local_ports", listen.port())
                    ));
                }
                if let Some(other) = listens.insert(listen, key("listen")) {
                    bail!(key_err(key("listen"), format!("{listen} is also {other}")));
                }
                if l.backends.is_empty() {
                    bail!(key_err(key("backends"), "at least one backend is required"));
                }
            }
            for (k, b) in l.backends.iter().enumerate() {
                if b.port() == 0 || b.ip().is_unspecified() || b.ip().is_multicast() {
                    bail!(key_err(
                        format!("listeners[{i}].backends[{k}]"),
                        format!("{b} is not a host address and port")
                    ));
                }
                if addrs.contains_key(&b.ip()) {
                    bail!(key_err(
                        format!("listeners[{i}].backends[{k}]"),
                        format!("{} is the gateway's own address", b.ip())
                    ));
                }
                let reachable = self.ports.iter().any(|p| match b.ip() {
                    IpAddr::V4(a) => p.gateway4.is_some() || p.ipv4.iter().any(|n| n.contains(&a)),
                    IpAddr::V6(a) => p.gateway6.is_some() || p.ipv6.iter().any(|n| n.contains(&a)),
                });
                if !reachable {
                    bail!(key_err(
                        format!("listeners[{i}].backends[{k}]"),
                        format!("no port is on {}'s subnet or has a gateway for it", b.ip())
                    ));
                }
            }
            if l.role == Role::Edge && !m.enabled {
                bail!(key_err(
                    key("role"),
                    "the edge role opens MPTCP connections: mptcp.enabled must be true"
                ));
            }
        }
        if let Some(listen) = self.metrics.listen {
            if listen.port() == 0 {
                bail!(key_err("metrics.listen", "port 0 is not a listening port"));
            }
            if let Some(at) = addrs.get(&listen.ip()) {
                bail!(key_err(
                    "metrics.listen",
                    format!(
                        "{} is a DPDK port's address ({at}); the endpoint listens on the \
                         host's own stack, e.g. 127.0.0.1:9469",
                        listen.ip()
                    )
                ));
            }
            if listen.ip().is_multicast() {
                bail!(key_err(
                    "metrics.listen",
                    format!("{} is a multicast address", listen.ip())
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    /// Checks transparent listener `i`: the ports it takes connections on, its
    /// destination ports, no `listen`, backends only for the edge role, and no other
    /// transparent listener taking the same destination port on the same port.
    fn check_transparent(&self, i: usize, l: &ListenerConfig) -> anyhow::Result<()> {
        let key = |k: &str| format!("listeners[{i}].{k}");
        if l.listen.is_some() {
            bail!(key_err(
                key("listen"),
                "a transparent listener takes any destination: remove listen (or set \
                 transparent = false)"
            ));
        }
        if l.ports.is_empty() {
            bail!(key_err(
                key("ports"),
                "a transparent listener names the ports its clients' traffic arrives on"
            ));
        }
        for (k, name) in l.ports.iter().enumerate() {
            if !self.ports.iter().any(|p| &p.name == name) {
                bail!(key_err(
                    format!("listeners[{i}].ports[{k}]"),
                    format!("no port is named {name:?}")
                ));
            }
        }
        for (k, r) in l.destination_ports.iter().enumerate() {
            let (a, b) = r.bounds();
            if a == 0 || b < a {
                bail!(key_err(
                    format!("listeners[{i}].destination_ports[{k}]"),
                    format!("[{a}, {b}] is not a range of ports 1..=65535")
                ));
            }
        }
        if l.role == Role::Concentrator && !l.backends.is_empty() {
            bail!(key_err(
                key("backends"),
                "a transparent concentrator relays each connection to its original \
                 destination; backends are for a transparent edge (concentrators to \
                 send everything to)"
            ));
        }
        let ranges = |l: &ListenerConfig| -> Vec<(u16, u16)> {
            if l.destination_ports.is_empty() {
                vec![(1, u16::MAX)]
            } else {
                l.destination_ports.iter().map(|r| r.bounds()).collect()
            }
        };
        for (j, other) in self.listeners[..i].iter().enumerate() {
            let port = l.ports.iter().find(|p| other.ports.contains(p));
            let overlap = ranges(l)
                .iter()
                .any(|&(a, b)| ranges(other).iter().any(|&(c, d)| a <= d && c <= b));
            if let (true, Some(port), true) = (other.transparent, port, overlap) {
                bail!(key_err(
                    key("destination_ports"),
                    format!(
                        "listeners[{j}] already takes some of these destination ports on \
                         port {port:?}"
                    )
                ));
            }
        }
        Ok(())
    }
}

/// A setting a reload changes at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Dotted key path, e.g. `mptcp.scheduler`.
    pub key: String,
    /// The value in force, as the configuration spells it (Debug form).
    pub from: String,
    /// The new value.
    pub to: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} → {}", self.key, self.from, self.to)
    }
}

/// Compares one setting: a difference is a [`Change`] when `runtime`, else a
/// [`KeyError`] refusing the reload.
struct Diff {
    changes: Vec<Change>,
}

impl Diff {
    fn check<T: PartialEq + fmt::Debug>(
        &mut self,
        key: &str,
        old: &T,
        new: &T,
        runtime: bool,
    ) -> Result<(), KeyError> {
        if old == new {
            return Ok(());
        }
        if !runtime {
            return Err(KeyError {
                key: key.to_owned(),
                msg: "cannot change at runtime, restart mpgw".into(),
            });
        }
        self.changes.push(Change {
            key: key.to_owned(),
            from: format!("{old:?}"),
            to: format!("{new:?}"),
        });
        Ok(())
    }
}

impl Config {
    /// What changes from `self` (in force) to `new` (both validated): the settings a
    /// running gateway applies (`log.level`, `ports[i].flags`, `mptcp.*` but the
    /// buffers), or the first key that cannot change without a restart.
    pub fn runtime_changes(&self, new: &Config) -> Result<Vec<Change>, KeyError> {
        let mut d = Diff {
            changes: Vec::new(),
        };
        let (a, b) = (&self.dataplane, &new.dataplane);
        d.check("dataplane.main_lcore", &a.main_lcore, &b.main_lcore, false)?;
        d.check("dataplane.workers", &a.workers, &b.workers, false)?;
        d.check(
            "dataplane.mbufs_per_worker",
            &a.mbufs_per_worker,
            &b.mbufs_per_worker,
            false,
        )?;
        d.check(
            "dataplane.mempool_cache",
            &a.mempool_cache,
            &b.mempool_cache,
            false,
        )?;
        d.check(
            "dataplane.descriptors",
            &a.descriptors,
            &b.descriptors,
            false,
        )?;
        d.check("dataplane.flow_rules", &a.flow_rules, &b.flow_rules, false)?;
        d.check("eal", &self.eal, &new.eal, false)?;
        d.check("admin.socket", &self.admin.socket, &new.admin.socket, false)?;
        d.check(
            "metrics.listen",
            &self.metrics.listen,
            &new.metrics.listen,
            false,
        )?;
        d.check("log.level", &self.log.level, &new.log.level, true)?;
        d.check(
            "ports (their number)",
            &self.ports.len(),
            &new.ports.len(),
            false,
        )?;
        for (i, (a, b)) in self.ports.iter().zip(&new.ports).enumerate() {
            let k = |f: &str| format!("ports[{i}].{f}");
            d.check(&k("name"), &a.name, &b.name, false)?;
            d.check(&k("device"), &a.device, &b.device, false)?;
            d.check(&k("mac"), &a.mac, &b.mac, false)?;
            d.check(&k("ipv4"), &a.ipv4, &b.ipv4, false)?;
            d.check(&k("ipv6"), &a.ipv6, &b.ipv6, false)?;
            d.check(&k("gateway4"), &a.gateway4, &b.gateway4, false)?;
            d.check(&k("gateway6"), &a.gateway6, &b.gateway6, false)?;
            d.check(&k("mtu"), &a.mtu, &b.mtu, false)?;
            d.check(&k("mss_clamp"), &a.mss_clamp, &b.mss_clamp, false)?;
            d.check(&k("vlan"), &a.vlan, &b.vlan, false)?;
            d.check(&k("flags"), &a.flags, &b.flags, true)?;
        }
        d.check("diag", &self.diag, &new.diag, false)?;
        d.check("relay", &self.relay, &new.relay, false)?;
        d.check("listeners", &self.listeners, &new.listeners, false)?;
        let (a, b) = (&self.mptcp, &new.mptcp);
        d.check("mptcp.recv_buffer", &a.recv_buffer, &b.recv_buffer, false)?;
        d.check("mptcp.send_buffer", &a.send_buffer, &b.send_buffer, false)?;
        d.check("mptcp.enabled", &a.enabled, &b.enabled, true)?;
        d.check(
            "mptcp.checksum_enabled",
            &a.checksum_enabled,
            &b.checksum_enabled,
            true,
        )?;
        d.check("mptcp.subflows", &a.subflows, &b.subflows, true)?;
        d.check("mptcp.scheduler", &a.scheduler, &b.scheduler, true)?;
        d.check("mptcp.coupled_cc", &a.coupled_cc, &b.coupled_cc, true)?;
        d.check(
            "mptcp.syn_retrans_before_tcp_fallback",
            &a.syn_retrans_before_tcp_fallback,
            &b.syn_retrans_before_tcp_fallback,
            true,
        )?;
        d.check(
            "mptcp.stale_loss_cnt",
            &a.stale_loss_cnt,
            &b.stale_loss_cnt,
            true,
        )?;
        d.check(
            "mptcp.add_addr_timeout",
            &a.add_addr_timeout,
            &b.add_addr_timeout,
            true,
        )?;
        d.check(
            "mptcp.close_timeout",
            &a.close_timeout,
            &b.close_timeout,
            true,
        )?;
        d.check(
            "mptcp.add_addr_accepted",
            &a.add_addr_accepted,
            &b.add_addr_accepted,
            true,
        )?;
        d.check(
            "mptcp.allow_join_initial_addr_port",
            &a.allow_join_initial_addr_port,
            &b.allow_join_initial_addr_port,
            true,
        )?;
        d.check("mptcp.path_manager", &a.path_manager, &b.path_manager, true)?;
        d.check("mptcp.ndiffports", &a.ndiffports, &b.ndiffports, true)?;
        Ok(d.changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[dataplane]
main_lcore = 0
workers = [1]

[eal]
no_huge = true
memory_mb = 512

[[ports]]
name = "down0"
device = "net_af_packet0,iface=gd0"
ipv4 = ["192.0.2.1/24"]
ipv6 = ["2001:db8::1/64"]

[[ports]]
name = "up0"
device = "0000:01:00.0"
mac = "02:00:00:00:00:01"
ipv4 = ["203.0.113.1/24"]
gateway4 = "203.0.113.254"
"#;

    fn err(text: &str) -> String {
        format!("{:#}", Config::parse(text).unwrap_err())
    }

    #[test]
    fn a_good_file_parses_and_names_its_devices() {
        let cfg = Config::parse(GOOD).unwrap();
        assert_eq!(cfg.ports.len(), 2);
        assert_eq!(
            cfg.ports[0].device(),
            Device::Vdev {
                spec: "net_af_packet0,iface=gd0",
                name: "net_af_packet0"
            }
        );
        assert_eq!(cfg.ports[1].device(), Device::Pci("0000:01:00.0"));
        assert_eq!(cfg.ports[1].mtu, 1500);
    }

    #[test]
    fn an_unknown_key_is_named() {
        let e = err(&GOOD.replace("memory_mb", "memory_mib"));
        assert!(e.contains("unknown field `memory_mib`"), "{e}");
    }

    #[test]
    fn an_invalid_address_is_named_with_its_line() {
        let e = err(&GOOD.replace("192.0.2.1/24", "192.0.2.300/24"));
        assert!(e.contains("ipv4") && e.contains("line"), "{e}");
    }

    #[test]
    fn a_duplicate_address_names_both_keys() {
        let e = err(&GOOD
            .replace("203.0.113.1/24", "192.0.2.1/24")
            .replace("203.0.113.254", "192.0.2.254"));
        assert!(
            e.contains("ports[1].ipv4[0]") && e.contains("ports[0].ipv4[0]"),
            "{e}"
        );
    }

    #[test]
    fn missing_ports_are_an_error() {
        let e = err("[dataplane]\nworkers = [1]\n");
        assert!(e.starts_with("ports:"), "{e}");
    }

    #[test]
    fn a_port_without_device_is_named() {
        let e = err(&GOOD.replace("device = \"0000:01:00.0\"\n", ""));
        assert!(e.contains("missing field `device`"), "{e}");
    }

    #[test]
    fn semantic_errors_name_their_keys() {
        for (from, to, key) in [
            ("workers = [1]", "workers = [0]", "dataplane.workers[0]"),
            ("203.0.113.254", "198.51.100.1", "ports[1].gateway4"),
            ("name = \"up0\"", "name = \"down0\"", "ports[1].name"),
            ("0000:01:00.0", "net_af_packet0", "ports[1].device"),
            ("02:00:00:00:00:01", "01:00:5e:00:00:01", "ports[1].mac"),
        ] {
            let e = err(&GOOD.replace(from, to));
            assert!(e.starts_with(key), "{key}: {e}");
        }
    }

    #[test]
    fn flow_rules_default_off_and_bound() {
        let cfg = Config::parse(GOOD).unwrap();
        assert_eq!(cfg.dataplane.flow_rules, DEFAULT_FLOW_RULES);
        let with =
            |n: u32| GOOD.replace("workers = [1]", &format!("workers = [1]\nflow_rules = {n}"));
        assert_eq!(Config::parse(&with(0)).unwrap().dataplane.flow_rules, 0);
        let e = err(&with(MAX_FLOW_RULES + 1));
        assert!(e.starts_with("dataplane.flow_rules: at most"), "{e}");
        let (a, b) = (
            Config::parse(GOOD).unwrap(),
            Config::parse(&with(16)).unwrap(),
        );
        let e = a.runtime_changes(&b).unwrap_err();
        assert_eq!(e.key, "dataplane.flow_rules");
    }

    #[test]
    fn diagnostic_services_listen_on_own_addresses_only() {
        let with =
            |listen: &str| format!("{GOOD}\n[[diag]]\nlisten = \"{listen}\"\nmode = \"echo\"\n");
        let cfg = Config::parse(&with("[2001:db8::1]:7")).unwrap();
        assert_eq!(cfg.diag[0].mode, DiagModeConfig::Echo);
        let e = err(&with("198.51.100.1:7"));
        assert!(
            e.starts_with("diag[0].listen: 198.51.100.1 is not an address"),
            "{e}"
        );
        let e = err(&with("192.0.2.1:0"));
        assert!(e.starts_with("diag[0].listen"), "{e}");
        let e = err(&with("192.0.2.1:7").replace("\"echo\"", "\"chargen\""));
        assert!(e.contains("unknown variant `chargen`"), "{e}");
    }

    #[test]
    fn gateway_feature_keys_are_checked_and_named() {
        let port = "gateway4 = \"203.0.113.254\"\n";
        let with_port = |extra: &str| GOOD.replace(port, &format!("{port}{extra}\n"));
        let cfg = Config::parse(&with_port("mtu = 1400\nmss_clamp = 1300\nvlan = 100")).unwrap();
        assert_eq!(
            (cfg.ports[1].mss_clamp, cfg.ports[1].vlan),
            (Some(1300), Some(100))
        );
        assert_eq!(cfg.mptcp.close_timeout, 60);
        for (extra, key, msg) in [
            (
                "mss_clamp = 1461",
                "ports[1].mss_clamp",
                "outside 536..=1460",
            ),
            (
                "mtu = 1400\nmss_clamp = 1361",
                "ports[1].mss_clamp",
                "outside 536..=1360",
            ),
            ("mss_clamp = 100", "ports[1].mss_clamp", "outside 536"),
            ("vlan = 0", "ports[1].vlan", "outside 1..=4094"),
            ("vlan = 4095", "ports[1].vlan", "outside 1..=4094"),
        ] {
            let e = err(&with_port(extra));
            assert!(e.starts_with(key) && e.contains(msg), "{extra}: {e}");
        }
        let e = err(&format!("{GOOD}\n[mptcp]\nclose_timeout = 86401\n"));
        assert!(e.starts_with("mptcp.close_timeout: must be at most"), "{e}");
        let cfg = Config::parse(&format!("{GOOD}\n[mptcp]\nclose_timeout = 0\n")).unwrap();
        assert_eq!(cfg.mptcp.close_timeout, 0);
        let e = err(&with_port("vlan = -1"));
        assert!(e.contains("vlan"), "{e}");
    }

    #[test]
    fn relay_listeners_are_checked_key_by_key() {
        let with = |listener: &str| format!("{GOOD}\n[[listeners]]\n{listener}\n");
        let good =
            "listen = \"192.0.2.1:80\"\nrole = \"concentrator\"\nbackends = [\"203.0.113.9:80\"]";
        let cfg = Config::parse(&with(good)).unwrap();
        assert_eq!(cfg.listeners[0].role, Role::Concentrator);
        assert_eq!(
            cfg.listeners[0].backends,
            vec!["203.0.113.9:80".parse().unwrap()]
        );
        for (from, to, want) in [
            (
                "192.0.2.1:80",
                "192.0.2.9:80",
                "listeners[0].listen: 192.0.2.9 is not an address",
            ),
            (
                "192.0.2.1:80",
                "192.0.2.1:40000",
                "listeners[0].listen: port 40000 lies in relay.local_ports",
            ),
            (
                "[\"203.0.113.9:80\"]",
                "[]",
                "listeners[0].backends: at least one",
            ),
            (
                "203.0.113.9:80",
                "192.0.2.1:81",
                "listeners[0].backends[0]: 192.0.2.1 is the gateway's own",
            ),
            (
                "203.0.113.9:80",
                "[2001:db8:5::1]:80",
                "listeners[0].backends[0]: no port is on",
            ),
            (
                "203.0.113.9:80",
                "203.0.113.9:0",
                "listeners[0].backends[0]: 203.0.113.9:0 is not",
            ),
        ] {
            let e = err(&with(&good.replace(from, to)));
            assert!(e.starts_with(want), "{want}: {e}");
        }
        let twice = format!("{}\n[[listeners]]\n{good}\n", with(good));
        assert!(err(&twice)
            .starts_with("listeners[1].listen: 192.0.2.1:80 is also listeners[0].listen"));
        let edge = with(&good.replace("concentrator", "edge"));
        assert!(Config::parse(&edge).is_ok());
        let e = err(&format!("{edge}\n[mptcp]\nenabled = false\n"));
        assert!(e.starts_with("listeners[0].role"), "{e}");
        let e = err(&format!("{GOOD}\n[relay]\nlocal_ports = [60000, 60010]\n"));
        assert!(e.starts_with("relay.local_ports"), "{e}");
        let e = err(&format!(
            "{GOOD}\n[mptcp]\npath_manager = \"ndiffports\"\nndiffports = 0\n"
        ));
        assert!(e.starts_with("mptcp.ndiffports"), "{e}");
    }

    #[test]
    fn transparent_listeners_are_checked_key_by_key() {
        let with = |listener: &str| format!("{GOOD}\n[[listeners]]\n{listener}\n");
        let good = "transparent = true\nrole = \"concentrator\"\nports = [\"down0\"]\n\
                    destination_ports = [80, [8000, 8999]]";
        let cfg = Config::parse(&with(good)).unwrap();
        let l = &cfg.listeners[0];
        assert!(l.transparent && l.listen.is_none() && l.backends.is_empty());
        assert_eq!(
            l.destination_ports
                .iter()
                .map(|r| r.bounds())
                .collect::<Vec<_>>(),
            vec![(80, 80), (8000, 8999)]
        );
        // Every destination port by default; an edge may name concentrators.
        let edge = "transparent = true\nrole = \"edge\"\nports = [\"down0\"]\n\
                    backends = [\"203.0.113.9:443\"]";
        assert!(Config::parse(&with(edge)).is_ok());
        for (listener, want) in [
            (
                good.replace(
                    "transparent = true",
                    "transparent = true\nlisten = \"192.0.2.1:80\"",
                ),
                "listeners[0].listen: a transparent listener takes any destination",
            ),
            (
                good.replace("ports = [\"down0\"]\n", ""),
                "listeners[0].ports: a transparent listener names the ports",
            ),
            (
                good.replace("\"down0\"", "\"down0\", \"wan9\""),
                "listeners[0].ports[1]: no port is named \"wan9\"",
            ),
            (
                good.replace("[8000, 8999]", "[9000, 8999]"),
                "listeners[0].destination_ports[1]: [9000, 8999] is not a range",
            ),
            (
                good.replace("[80,", "[0,"),
                "listeners[0].destination_ports[0]: [0, 0] is not a range",
            ),
            (
                format!("{good}\nbackends = [\"203.0.113.9:80\"]"),
                "listeners[0].backends: a transparent concentrator relays each connection \
                 to its original destination",
            ),
            (
                edge.replace("203.0.113.9:443", "192.0.2.1:443"),
                "listeners[0].backends[0]: 192.0.2.1 is the gateway's own",
            ),
            // Without transparent: the keys of a transparent listener are refused.
            (
                "role = \"edge\"\nports = [\"down0\"]".to_string(),
                "listeners[0].listen: an address and port is required (or transparent",
            ),
            (
                "listen = \"192.0.2.1:80\"\nrole = \"edge\"\nports = [\"down0\"]\n\
                 backends = [\"203.0.113.9:80\"]"
                    .to_string(),
                "listeners[0].ports: only for a transparent listener",
            ),
            (
                "listen = \"192.0.2.1:80\"\nrole = \"edge\"\ndestination_ports = [80]\n\
                 backends = [\"203.0.113.9:80\"]"
                    .to_string(),
                "listeners[0].destination_ports: only for a transparent listener",
            ),
        ] {
            let e = err(&with(&listener));
            assert!(e.starts_with(want), "{want}: {e}");
        }
        // Two transparent listeners may share a port only on distinct destination
        // ports.
        let other = "transparent = true\nrole = \"edge\"\nports = [\"up0\", \"down0\"]";
        let both = |second: &str| format!("{}\n[[listeners]]\n{second}\n", with(good));
        let e = err(&both(other));
        assert!(
            e.starts_with(
                "listeners[1].destination_ports: listeners[0] already takes some of these \
                 destination ports on port \"down0\""
            ),
            "{e}"
        );
        assert!(Config::parse(&both(&format!("{other}\ndestination_ports = [443]"))).is_ok());
        assert!(Config::parse(&both(&other.replace(", \"down0\"", ""))).is_ok());
        // The limit the path manager honours for announced addresses.
        let m = |v: &str| format!("{GOOD}\n[mptcp]\nadd_addr_accepted = {v}\n");
        assert_eq!(Config::parse(&m("4")).unwrap().mptcp.add_addr_accepted, 4);
        assert_eq!(Config::parse(GOOD).unwrap().mptcp.add_addr_accepted, 0);
        assert!(err(&m("9")).starts_with("mptcp.add_addr_accepted: at most 8"));
    }

    #[test]
    fn the_metrics_endpoint_is_optional_and_checked() {
        assert_eq!(Config::parse(GOOD).unwrap().metrics.listen, None);
        let with = |m: &str| format!("{GOOD}\n[metrics]\n{m}\n");
        let cfg = Config::parse(&with("listen = \"127.0.0.1:9469\"")).unwrap();
        assert_eq!(cfg.metrics.listen, Some("127.0.0.1:9469".parse().unwrap()));
        for (m, want) in [
            ("listen = \"127.0.0.1:0\"", "metrics.listen: port 0"),
            (
                "listen = \"192.0.2.1:9469\"",
                "metrics.listen: 192.0.2.1 is a DPDK port's address (ports[0].ipv4[0])",
            ),
            (
                "listen = \"[ff02::1]:9469\"",
                "metrics.listen: ff02::1 is a multicast",
            ),
        ] {
            let e = err(&with(m));
            assert!(e.starts_with(want), "{want}: {e}");
        }
        let e = err(&with("listen = \"localhost:9469\""));
        assert!(
            e.contains("listen = ") && e.contains("'localhost:9469' is not an IP address"),
            "{e}"
        );
        let e = err(&with("port = 9469"));
        assert!(e.contains("unknown field `port`"), "{e}");
    }

    #[test]
    fn pci_addresses_are_recognised() {
        assert!(is_pci_address("0000:3b:00.1"));
        assert!(is_pci_address("3b:00.1"));
        assert!(!is_pci_address("net_null0"));
        assert!(!is_pci_address("00:00:00"));
    }

    fn changes(edit: impl Fn(&str) -> String) -> Result<Vec<Change>, String> {
        let old = Config::parse(GOOD).map_err(|e| e.to_string())?;
        let new = Config::parse(&edit(GOOD)).map_err(|e| e.to_string())?;
        old.runtime_changes(&new).map_err(|e| e.to_string())
    }

    #[test]
    fn an_unchanged_configuration_changes_nothing() {
        assert_eq!(changes(str::to_owned), Ok(Vec::new()));
    }

    #[test]
    fn mptcp_settings_flags_and_log_level_change_at_runtime() {
        let got = changes(|t| {
            let t = t.replace(
                "name = \"down0\"",
                "name = \"down0\"\nflags = [\"signal\"]",
            );
            format!("{t}\n[mptcp]\nscheduler = \"roundrobin\"\nsubflows = 4\n[log]\nlevel = \"debug\"\n")
        })
        .unwrap();
        let keys: Vec<&str> = got.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "log.level",
                "ports[0].flags",
                "mptcp.subflows",
                "mptcp.scheduler"
            ]
        );
        assert_eq!(got[3].to_string(), "mptcp.scheduler: Default → Roundrobin");
    }

    #[test]
    fn devices_addresses_workers_and_buffers_are_refused_by_key() {
        let refused = |from: &str, to: &str| changes(|t| t.replace(from, to)).unwrap_err();
        assert_eq!(
            refused("iface=gd0", "iface=gd9"),
            "ports[0].device: cannot change at runtime, restart mpgw"
        );
        assert_eq!(
            refused("192.0.2.1/24", "192.0.2.9/24"),
            "ports[0].ipv4: cannot change at runtime, restart mpgw"
        );
        assert_eq!(
            refused("workers = [1]", "workers = [1, 2]"),
            "dataplane.workers: cannot change at runtime, restart mpgw"
        );
        let buffers = changes(|t| format!("{t}\n[mptcp]\nrecv_buffer = 1048576\n")).unwrap_err();
        assert!(
            buffers.starts_with("mptcp.recv_buffer: cannot change"),
            "{buffers}"
        );
        let fewer = changes(|t| {
            t.split("[[ports]]\nname = \"up0\"")
                .next()
                .unwrap_or(t)
                .to_owned()
        });
        assert!(fewer.unwrap_err().starts_with("ports (their number)"));
    }
}
