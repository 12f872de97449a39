//! Ethernet ports: configuration masked by device capability, start-up, statistics, and
//! the per-worker RX/TX queue pairs.

use super::eal::{runtime, Runtime};
use super::error::{Error, Result};
use super::link_watch::LinkWatch;
use super::mbuf::Mbuf;
use super::mempool::Mempool;
use crate::port::{Burst, Port, BURST_SIZE};
use crate::rss::{self, Rss};
use dpdk_sys as sys;
use std::cell::Cell;
use std::ffi::CStr;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

// Burst lengths are passed to DPDK as `u16`.
const _: () = assert!(BURST_SIZE <= u16::MAX as usize);

/// How to configure a port. Values are wishes: [`EthDev::open`] masks them by what the
/// device supports and reports the result as [`EthDev::effective`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// RX queues (one per worker); clamped to the device maximum.
    pub rx_queues: u16,
    /// TX queues; clamped to the device maximum.
    pub tx_queues: u16,
    /// RX descriptors per queue; adjusted to the device limits.
    pub rx_desc: u16,
    /// TX descriptors per queue; adjusted to the device limits.
    pub tx_desc: u16,
    /// MTU; `None` keeps the device default.
    pub mtu: Option<u16>,
    /// RSS hash types wanted (`RTE_ETH_RSS_*`); RSS is used only with several RX queues.
    pub rss_hf: u64,
    /// RX offloads wanted (`RTE_ETH_RX_OFFLOAD_*`).
    pub rx_offloads: u64,
    /// TX offloads wanted (`RTE_ETH_TX_OFFLOAD_*`).
    pub tx_offloads: u64,
    /// Receive every frame regardless of destination MAC.
    pub promiscuous: bool,
    /// Link-state-change interrupts (`intr_conf.lsc`), where the PMD has them
    /// ([`DevInfo::lsc`]): [`EthDev::watch_link`] then hears of link changes at once.
    pub lsc: bool,
    /// How long [`EthDev::open`] waits for the link to come up.
    pub link_wait: Duration,
}

impl Default for PortConfig {
    /// One queue pair of 1024 descriptors, RSS over IP/TCP/UDP and IPv4/TCP/UDP checksum
    /// offloads wanted, not promiscuous, LSC interrupts where supported, up to 3 s of
    /// link wait.
    fn default() -> Self {
        Self {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            mtu: None,
            rss_hf: u64::from(sys::RTE_ETH_RSS_IP)
                | u64::from(sys::RTE_ETH_RSS_TCP)
                | u64::from(sys::RTE_ETH_RSS_UDP),
            rx_offloads: u64::from(sys::RTE_ETH_RX_OFFLOAD_CHECKSUM)
                | u64::from(sys::RTE_ETH_RX_OFFLOAD_RSS_HASH),
            // MULTI_SEGS: zero-copy TX sends header + chained payload segments; a PMD
            // without it may pick a TX path that sends only the first segment.
            tx_offloads: u64::from(sys::RTE_ETH_TX_OFFLOAD_IPV4_CKSUM)
                | u64::from(sys::RTE_ETH_TX_OFFLOAD_TCP_CKSUM)
                | u64::from(sys::RTE_ETH_TX_OFFLOAD_UDP_CKSUM)
                | u64::from(sys::RTE_ETH_TX_OFFLOAD_MULTI_SEGS),
            promiscuous: false,
            lsc: true,
            link_wait: Duration::from_secs(3),
        }
    }
}

/// What the device reported about itself (`rte_eth_dev_info_get`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevInfo {
    /// PMD name, e.g. `net_ring`, `net_null`, `net_ice`.
    pub driver: String,
    /// Most RX queues the device supports.
    pub max_rx_queues: u16,
    /// Most TX queues the device supports.
    pub max_tx_queues: u16,
    /// RSS hash types the device can compute (`flow_type_rss_offloads`).
    pub rss_offloads: u64,
    /// RX offloads the device supports.
    pub rx_offload_capa: u64,
    /// TX offloads the device supports.
    pub tx_offload_capa: u64,
    /// RSS hash key size in bytes (0: no RSS key).
    pub hash_key_size: u8,
    /// RSS redirection table size.
    pub reta_size: u16,
    /// Smallest MTU accepted.
    pub min_mtu: u16,
    /// Largest MTU accepted.
    pub max_mtu: u16,
    /// NUMA socket of the device ([`super::SOCKET_ID_ANY`] when unknown).
    pub socket_id: i32,
    /// The PMD raises link-state-change interrupts (`RTE_ETH_DEV_INTR_LSC`).
    pub lsc: bool,
}

/// The wanted bits [`EthDev::open`] did not apply (wanted & !effective).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// RSS hash types not supported, or all of them when RSS is not used.
    pub rss_hf: u64,
    /// RX offloads not supported (or `RSS_HASH` without RSS).
    pub rx_offloads: u64,
    /// TX offloads not supported.
    pub tx_offloads: u64,
}

/// Link state (`rte_eth_link_get_nowait`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStatus {
    /// Carrier up.
    pub up: bool,
    /// Speed in Mbit/s (0 when unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Basic port counters (`rte_eth_stats_get`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets dropped by the hardware because RX queues were full.
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// A configured port; stopped and closed when its [`EthDev`], all its [`EthPort`]s and
/// [`LinkWatch`]es are gone.
pub(super) struct DevInner {
    pub(super) port_id: u16,
    pool: Mempool,
    /// The RSS key handed to `rte_eth_dev_configure`: ethdev keeps the pointer in the
    /// port's configuration and PMDs read it at start, so it lives as long as the port.
    _rss_key: Box<[u8]>,
    _rt: Arc<Runtime>,
}

impl Drop for DevInner {
    fn drop(&mut self) {
        // SAFETY: the port was valid at open and no queue handle is left to poll it.
        let ret = unsafe { sys::rte_eth_dev_stop(self.port_id) };
        if ret < 0 {
            tracing::warn!(port = self.port_id, error = %Error::from_errno("rte_eth_dev_stop", -ret), "port stop");
        }
        // SAFETY: as above; the port is stopped.
        let ret = unsafe { sys::rte_eth_dev_close(self.port_id) };
        if ret < 0 {
            tracing::warn!(port = self.port_id, error = %Error::from_errno("rte_eth_dev_close", -ret), "port close");
        }
    }
}

/// A configured, started ethdev port.
pub struct EthDev {
    inner: Arc<DevInner>,
    info: DevInfo,
    effective: PortConfig,
    dropped: Dropped,
    mac: [u8; 6],
    link_at_open: LinkStatus,
    queue_pairs: u16,
    queues_taken: bool,
    rss: Option<Rss>,
}

impl EthDev {
    /// Configures and starts `port_id` with `cfg`, receiving into mbufs from `pool`.
    ///
    /// Capabilities are masked (never OR-ed in): RSS hash types and offloads the device
    /// lacks are left out and listed in [`EthDev::dropped`]; queue counts are clamped and
    /// descriptor counts adjusted to the device limits; RSS is enabled only with more than
    /// one RX queue and a non-empty masked hash set. An unsupported promiscuous mode is
    /// tolerated. A link that is not up within `cfg.link_wait` is logged, not an error
    /// ([`EthDev::link_at_open`]).
    pub fn open(port_id: u16, cfg: &PortConfig, pool: &Mempool) -> Result<EthDev> {
        let rt = runtime()?;
        // SAFETY: EAL runs; the call only reads the ethdev table.
        if unsafe { sys::rte_eth_dev_is_valid_port(port_id) } == 0 {
            return Err(Error::new(
                "rte_eth_dev_is_valid_port",
                libc::ENODEV,
                format!("no ethdev port {port_id}"),
            ));
        }
        let info = dev_info(port_id)?;

        let clamp = |wanted: u16, max: u16, what: &str| {
            if wanted == 0 {
                Err(Error::new(
                    "EthDev::open",
                    libc::EINVAL,
                    format!("{what} must be at least 1"),
                ))
            } else {
                Ok(wanted.min(max.max(1)))
            }
        };
        let rx_queues = clamp(cfg.rx_queues, info.max_rx_queues, "rx_queues")?;
        let tx_queues = clamp(cfg.tx_queues, info.max_tx_queues, "tx_queues")?;
        let masked_rss = cfg.rss_hf & info.rss_offloads;
        let rss = rx_queues > 1 && masked_rss != 0;
        let rss_hf = if rss { masked_rss } else { 0 };
        let mut rx_offloads = cfg.rx_offloads & info.rx_offload_capa;
        if !rss {
            // ethdev rejects the RSS_HASH offload without RSS multi-queue mode.
            rx_offloads &= !u64::from(sys::RTE_ETH_RX_OFFLOAD_RSS_HASH);
        }
        let tx_offloads = mask_tx_offloads(cfg.tx_offloads, info.tx_offload_capa);
        // ethdev refuses `intr_conf.lsc` from a PMD without LSC interrupts.
        let lsc = cfg.lsc && info.lsc;
        if let Some(mtu) = cfg.mtu {
            if !(info.min_mtu..=info.max_mtu).contains(&mtu) {
                return Err(Error::new(
                    "EthDev::open",
                    libc::EINVAL,
                    format!(
                        "MTU {mtu} outside the device range {}..={}",
                        info.min_mtu, info.max_mtu
                    ),
                ));
            }
        }

        let mut conf = sys::rte_eth_conf::default();
        conf.rxmode.mq_mode = if rss {
            sys::rte_eth_rx_mq_mode::RTE_ETH_MQ_RX_RSS
        } else {
            sys::rte_eth_rx_mq_mode::RTE_ETH_MQ_RX_NONE
        };
        conf.rxmode.offloads = rx_offloads;
        conf.rxmode.mtu = cfg.mtu.map_or(0, u32::from);
        conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        // mpgw's own key (of the device's key size; a device that names none keeps
        // its own), so workers can compute where replies land.
        let mut rss_key = rss::default_key(usize::from(info.hash_key_size)).into_boxed_slice();
        let key_len = match rss_key.len() {
            0 => rss::DEFAULT_KEY.len(),
            n => n,
        };
        if rss && !rss_key.is_empty() {
            conf.rx_adv_conf.rss_conf.rss_key = rss_key.as_mut_ptr();
            // At most MAX_KEY_LEN (64) bytes: fits.
            conf.rx_adv_conf.rss_conf.rss_key_len = key_len as u8;
        }
        conf.txmode.offloads = tx_offloads;
        conf.intr_conf.set_lsc(u32::from(lsc));
        // SAFETY: valid port, `conf` is a fully initialised configuration.
        let ret = unsafe { sys::rte_eth_dev_configure(port_id, rx_queues, tx_queues, &conf) };
        Error::check("rte_eth_dev_configure", ret)?;

        let (mut rx_desc, mut tx_desc) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: configured port; both out-pointers are valid.
        let ret =
            unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &mut rx_desc, &mut tx_desc) };
        Error::check("rte_eth_dev_adjust_nb_rx_tx_desc", ret)?;

        // DPDK takes the socket as unsigned; SOCKET_ID_ANY (-1) becomes all-ones as in C.
        let socket = info.socket_id as u32;
        for q in 0..rx_queues {
            // SAFETY: configured port, queue index below the configured count, NULL conf
            // means the driver defaults; `pool` outlives the queue: the `EthDev` keeps a
            // handle, and a pool is never freed while any of its mbufs is out.
            let ret = unsafe {
                sys::rte_eth_rx_queue_setup(
                    port_id,
                    q,
                    rx_desc,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            Error::check("rte_eth_rx_queue_setup", ret)?;
        }
        for q in 0..tx_queues {
            // SAFETY: as for the RX queues.
            let ret = unsafe {
                sys::rte_eth_tx_queue_setup(port_id, q, tx_desc, socket, std::ptr::null())
            };
            Error::check("rte_eth_tx_queue_setup", ret)?;
        }
        // SAFETY: configured port with all queues set up.
        let ret = unsafe { sys::rte_eth_dev_start(port_id) };
        Error::check("rte_eth_dev_start", ret)?;
        // Until here a failure leaves the port configured but stopped, so it can be opened
        // again with other settings; from here on `inner` stops and closes it.
        let inner = Arc::new(DevInner {
            port_id,
            pool: pool.clone(),
            _rss_key: rss_key,
            _rt: rt,
        });
        let rss = if rss {
            program_rss(port_id, info.reta_size, key_len, rx_queues)
                .map_err(|e| {
                    tracing::warn!(port = port_id, driver = %info.driver, error = %e,
                        "RSS key/RETA not known: replies are not steered by source port");
                })
                .ok()
        } else {
            None
        };

        let mut promiscuous = false;
        if cfg.promiscuous {
            // SAFETY: started port.
            let ret = unsafe { sys::rte_eth_promiscuous_enable(port_id) };
            if ret == -libc::ENOTSUP {
                tracing::warn!(port = port_id, "promiscuous mode not supported");
            } else {
                Error::check("rte_eth_promiscuous_enable", ret)?;
                promiscuous = true;
            }
        }

        let mut mac = sys::rte_ether_addr::default();
        // SAFETY: valid port and out-pointer.
        let ret = unsafe { sys::rte_eth_macaddr_get(port_id, &mut mac) };
        Error::check("rte_eth_macaddr_get", ret)?;

        let mut mtu = 0u16;
        // SAFETY: valid port and out-pointer.
        let ret = unsafe { sys::rte_eth_dev_get_mtu(port_id, &mut mtu) };
        let mtu = (ret == 0).then_some(mtu).or(cfg.mtu);

        let link_at_open = wait_for_link(port_id, cfg.link_wait)?;
        if !link_at_open.up {
            tracing::warn!(port = port_id, wait = ?cfg.link_wait, "link not up after open");
        }

        let effective = PortConfig {
            rx_queues,
            tx_queues,
            rx_desc,
            tx_desc,
            mtu,
            rss_hf,
            rx_offloads,
            tx_offloads,
            promiscuous,
            lsc,
            link_wait: cfg.link_wait,
        };
        let dropped = Dropped {
            rss_hf: cfg.rss_hf & !rss_hf,
            rx_offloads: cfg.rx_offloads & !rx_offloads,
            tx_offloads: cfg.tx_offloads & !tx_offloads,
        };
        if dropped != Dropped::default() {
            tracing::info!(port = port_id, driver = %info.driver, ?dropped, "port features not applied");
        }
        Ok(EthDev {
            inner,
            info,
            effective,
            dropped,
            mac: mac.addr_bytes,
            link_at_open,
            queue_pairs: rx_queues.min(tx_queues),
            queues_taken: false,
            rss,
        })
    }

    /// The port's RSS key and redirection table as the device reports them after
    /// [`EthDev::open`] programmed them (entry `i` → queue `i % rx_queues`); `None`
    /// without RSS (one RX queue, a PMD without RSS) or when the device could not
    /// report them.
    pub fn rss(&self) -> Option<&Rss> {
        self.rss.as_ref()
    }

    /// The port id.
    pub fn port_id(&self) -> u16 {
        self.inner.port_id
    }

    /// What keeps the port open (flow rules and link watches hold it).
    pub(super) fn inner(&self) -> &Arc<DevInner> {
        &self.inner
    }

    /// The configuration actually applied (masked, clamped, adjusted).
    pub fn effective(&self) -> &PortConfig {
        &self.effective
    }

    /// What was wanted but not applied.
    pub fn dropped(&self) -> &Dropped {
        &self.dropped
    }

    /// The device's capabilities.
    pub fn info(&self) -> &DevInfo {
        &self.info
    }

    /// The port's MAC address.
    pub fn mac_addr(&self) -> [u8; 6] {
        self.mac
    }

    /// Whether the port sends chained mbufs whole: the device offers
    /// `RTE_ETH_TX_OFFLOAD_MULTI_SEGS` and it is enabled. Without it a PMD may send the
    /// first segment alone (DPDK 22.11's `net_af_xdp` sends `pkt_len` bytes of the first
    /// segment's buffer), so its queues report [`Port::tx_chains`] false and egress
    /// sends single-segment frames.
    pub fn tx_chains(&self) -> bool {
        self.effective.tx_offloads & u64::from(sys::RTE_ETH_TX_OFFLOAD_MULTI_SEGS) != 0
    }

    /// The link state seen at the end of [`EthDev::open`].
    pub fn link_at_open(&self) -> LinkStatus {
        self.link_at_open
    }

    /// The current link state; reported down if the driver cannot tell.
    pub fn link(&self) -> LinkStatus {
        link(self.port_id()).unwrap_or_default()
    }

    /// Calls `on_change` from DPDK's interrupt thread after every link-state change of
    /// the port (its LSC interrupt), until the returned [`LinkWatch`] is dropped; `ENOTSUP`
    /// when the port runs without LSC interrupts ([`PortConfig::lsc`], [`DevInfo::lsc`]).
    /// `on_change` must be quick (it holds up DPDK's interrupt thread: typically it
    /// raises a flag and wakes a thread) and must not drop the watch; a panic in it is
    /// caught.
    pub fn watch_link(&self, on_change: impl Fn() + Send + Sync + 'static) -> Result<LinkWatch> {
        if !self.effective.lsc {
            return Err(Error::new(
                "EthDev::watch_link",
                libc::ENOTSUP,
                format!(
                    "port {} ({}) runs without LSC interrupts",
                    self.port_id(),
                    self.info.driver
                ),
            ));
        }
        LinkWatch::register(Arc::clone(&self.inner), Box::new(on_change))
    }

    /// The port's counters.
    pub fn stats(&self) -> Result<PortStats> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: open port, valid out-pointer.
        let ret = unsafe { sys::rte_eth_stats_get(self.port_id(), &mut s) };
        Error::check("rte_eth_stats_get", ret)?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// The port's queue pairs, `min(rx_queues, tx_queues)` of them: pair `i` is RX queue
    /// `i` plus TX queue `i`. Succeeds once; later calls return `EBUSY`.
    pub fn take_queues(&mut self) -> Result<Vec<EthPort>> {
        if self.queues_taken {
            return Err(Error::new(
                "EthDev::take_queues",
                libc::EBUSY,
                format!("queues of port {} already taken", self.port_id()),
            ));
        }
        self.queues_taken = true;
        let chains = self.tx_chains();
        Ok((0..self.queue_pairs)
            .map(|queue_id| EthPort {
                port_id: self.port_id(),
                queue_id,
                chains,
                pool: self.inner.pool.clone(),
                _dev: Arc::clone(&self.inner),
                _not_sync: PhantomData,
            })
            .collect())
    }
}

impl std::fmt::Debug for EthDev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EthDev")
            .field("port_id", &self.port_id())
            .field("info", &self.info)
            .field("effective", &self.effective)
            .field("dropped", &self.dropped)
            .finish()
    }
}

/// The TX offloads to apply: the wanted ones the device supports, never
/// `MBUF_FAST_FREE`. Fast free returns sent mbufs with a raw put into the first one's
/// pool, assuming every mbuf is direct, unshared and from that pool; the safe API sends
/// indirect segments ([`crate::port::PacketBuf::chain`]) and mbufs from any pool, which
/// would then go back still attached (aliasing another buffer) or into the wrong pool.
fn mask_tx_offloads(wanted: u64, capa: u64) -> u64 {
    wanted & capa & !u64::from(sys::RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE)
}

/// Reads the device information of `port_id`.
fn dev_info(port_id: u16) -> Result<DevInfo> {
    let mut di = sys::rte_eth_dev_info::default();
    // SAFETY: valid port, valid out-pointer.
    let ret = unsafe { sys::rte_eth_dev_info_get(port_id, &mut di) };
    Error::check("rte_eth_dev_info_get", ret)?;
    let driver = if di.driver_name.is_null() {
        String::new()
    } else {
        // SAFETY: the driver name is a static NUL-terminated string of the PMD.
        unsafe { CStr::from_ptr(di.driver_name) }
            .to_string_lossy()
            .into_owned()
    };
    // SAFETY: valid port.
    let socket_id = unsafe { sys::rte_eth_dev_socket_id(port_id) };
    // SAFETY: when set, `dev_flags` points into the port's data, valid while it exists.
    let dev_flags = unsafe { di.dev_flags.as_ref() }.copied().unwrap_or(0);
    Ok(DevInfo {
        driver,
        max_rx_queues: di.max_rx_queues,
        max_tx_queues: di.max_tx_queues,
        rss_offloads: di.flow_type_rss_offloads,
        rx_offload_capa: di.rx_offload_capa,
        tx_offload_capa: di.tx_offload_capa,
        hash_key_size: di.hash_key_size,
        reta_size: di.reta_size,
        min_mtu: di.min_mtu,
        max_mtu: di.max_mtu,
        socket_id: if socket_id < 0 {
            sys::SOCKET_ID_ANY
        } else {
            socket_id
        },
        lsc: dev_flags & sys::RTE_ETH_DEV_INTR_LSC != 0,
    })
}

/// Programs the redirection table of a started port with RSS (entry `i` → queue
/// `i % queues`; a device that refuses keeps its own) and reads back the key
/// (`key_len` bytes) and table in force; an error when the hash leaves out TCP ports
/// (the reply's queue could not be foreseen).
fn program_rss(port_id: u16, reta_size: u16, key_len: usize, queues: u16) -> Result<Rss> {
    let invalid = |what: String| Error::new("EthDev::open", libc::EINVAL, what);
    let size = usize::from(reta_size);
    if size == 0 || size > rss::MAX_RETA {
        return Err(invalid(format!("RETA size {reta_size} unsupported")));
    }
    let group = sys::RTE_ETH_RETA_GROUP_SIZE as usize;
    let mut table = vec![sys::rte_eth_rss_reta_entry64::default(); size.div_ceil(group)];
    for (i, q) in (0..reta_size).map(|i| (usize::from(i), i % queues)) {
        let g = &mut table[i / group];
        g.mask |= 1 << (i % group);
        g.reta[i % group] = q;
    }
    // SAFETY: started port; `table` holds `reta_size` entries in 64-entry groups.
    let ret = unsafe { sys::rte_eth_dev_rss_reta_update(port_id, table.as_mut_ptr(), reta_size) };
    if ret < 0 {
        // The device's own table is as good, if it can be read.
        let e = Error::from_errno("rte_eth_dev_rss_reta_update", -ret);
        tracing::info!(port = port_id, error = %e, "RETA kept as the device set it");
    }
    for g in &mut table {
        g.reta = [0; 64];
    }
    // SAFETY: as above; the masks name every entry to read.
    let ret = unsafe { sys::rte_eth_dev_rss_reta_query(port_id, table.as_mut_ptr(), reta_size) };
    Error::check("rte_eth_dev_rss_reta_query", ret)?;
    let reta: Vec<u16> = (0..size)
        .map(|i| table[i / group].reta[i % group])
        .collect();

    let mut key = [0u8; rss::MAX_KEY_LEN];
    let mut conf = sys::rte_eth_rss_conf {
        rss_key: key.as_mut_ptr(),
        rss_key_len: key.len() as u8,
        ..Default::default()
    };
    // SAFETY: started port; `conf.rss_key` points to `rss_key_len` writable bytes.
    let ret = unsafe { sys::rte_eth_dev_rss_hash_conf_get(port_id, &mut conf) };
    Error::check("rte_eth_dev_rss_hash_conf_get", ret)?;
    let tcp =
        u64::from(sys::RTE_ETH_RSS_NONFRAG_IPV4_TCP) | u64::from(sys::RTE_ETH_RSS_NONFRAG_IPV6_TCP);
    if conf.rss_hf & tcp != tcp {
        return Err(invalid(format!(
            "RSS hash types {:#x} leave out TCP ports",
            conf.rss_hf
        )));
    }
    // Some PMDs copy the key without setting its length.
    let len = usize::from(conf.rss_key_len).min(key_len);
    Rss::new(&key[..len], reta)
        .ok_or_else(|| invalid(format!("RSS key of {len} bytes or RETA unusable")))
}

/// The current link state of `port_id`.
fn link(port_id: u16) -> Result<LinkStatus> {
    let mut l = sys::rte_eth_link::default();
    // SAFETY: valid port, valid out-pointer.
    let ret = unsafe { sys::rte_eth_link_get_nowait(port_id, &mut l) };
    Error::check("rte_eth_link_get_nowait", ret)?;
    Ok(LinkStatus {
        up: u32::from(l.link_status()) == sys::RTE_ETH_LINK_UP,
        speed_mbps: l.link_speed,
        full_duplex: u32::from(l.link_duplex()) == sys::RTE_ETH_LINK_FULL_DUPLEX,
    })
}

/// Polls the link of `port_id` until it is up or `wait` has passed.
fn wait_for_link(port_id: u16, wait: Duration) -> Result<LinkStatus> {
    let deadline = Instant::now() + wait;
    loop {
        let status = link(port_id)?;
        if status.up || Instant::now() >= deadline {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One RX/TX queue pair of a started port, for one worker: `Send`, not `Sync`.
///
/// Keeps its port and mempool alive; the port is stopped and closed only after its
/// [`EthDev`] and every `EthPort` are dropped.
pub struct EthPort {
    port_id: u16,
    queue_id: u16,
    /// The port sends chained mbufs whole ([`EthDev::tx_chains`]).
    chains: bool,
    pool: Mempool,
    _dev: Arc<DevInner>,
    /// DPDK queues are not thread-safe: one poller at a time.
    _not_sync: PhantomData<Cell<()>>,
}

impl EthPort {
    /// The port id.
    pub fn port_id(&self) -> u16 {
        self.port_id
    }

    /// The queue index (the same for RX and TX).
    pub fn queue_id(&self) -> u16 {
        self.queue_id
    }

    /// The mempool RX fills and [`Port::alloc`] draws from.
    pub fn pool(&self) -> &Mempool {
        &self.pool
    }
}

impl Port for EthPort {
    type Buf = Mbuf;

    #[inline]
    fn rx_burst(&mut self, out: &mut Burst<Mbuf>) -> usize {
        let spare = out.spare();
        if spare == 0 {
            return 0;
        }
        // `Mbuf` is a transparent `NonNull<rte_mbuf>`, laid out as a `*mut rte_mbuf`.
        let slots = out.spare_ptr().cast::<*mut sys::rte_mbuf>();
        // SAFETY: the port is started (kept alive by `_dev`), this handle is the queue's
        // only poller (`&mut self`, `!Sync`, taken once), and `slots` has room for `spare`
        // (≤ BURST_SIZE, fits u16) pointers.
        let n = unsafe { sys::rte_eth_rx_burst(self.port_id, self.queue_id, slots, spare as u16) };
        let n = usize::from(n);
        // SAFETY: the PMD wrote `n <= spare` pointers to received mbufs we now own.
        unsafe { out.commit_filled(n) };
        n
    }

    #[inline]
    fn tx_burst(&mut self, pkts: &mut Burst<Mbuf>) -> usize {
        let len = pkts.len();
        if len == 0 {
            return 0;
        }
        let ptrs = pkts
            .as_mut_slice()
            .as_mut_ptr()
            .cast::<*mut sys::rte_mbuf>();
        // SAFETY: as in `rx_burst`; `ptrs` holds `len` (≤ BURST_SIZE) owned mbufs.
        let n = unsafe { sys::rte_eth_tx_burst(self.port_id, self.queue_id, ptrs, len as u16) };
        let n = usize::from(n);
        // SAFETY: the PMD took ownership of the first `n` mbufs.
        unsafe { pkts.forget_front(n) };
        n
    }

    #[inline]
    fn alloc(&mut self) -> Option<Mbuf> {
        self.pool.alloc()
    }

    fn pool_room(&self) -> Option<(usize, usize)> {
        let free = self.pool.available() as usize;
        Some((free, free + self.pool.in_use() as usize))
    }

    #[inline]
    fn tx_chains(&self) -> bool {
        self.chains
    }
}

impl std::fmt::Debug for EthPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EthPort")
            .field("port_id", &self.port_id)
            .field("queue_id", &self.queue_id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_free_is_never_applied() {
        let fast_free = u64::from(sys::RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE);
        let cksum = u64::from(sys::RTE_ETH_TX_OFFLOAD_TCP_CKSUM);
        assert_eq!(mask_tx_offloads(fast_free | cksum, u64::MAX), cksum);
        assert_eq!(mask_tx_offloads(cksum, 0), 0, "masked by capability");
    }
}
