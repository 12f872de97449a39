//! `mpgw run` and `mpgw check-config`: from a configuration file to running workers.
//!
//! Start-up order: configuration → EAL → mempool → ports (configured from their
//! capabilities, one queue pair per worker) → one worker per worker lcore → the control
//! loop on the main lcore (signals, admin socket) → orderly stop: workers leave their
//! loops, are joined, ports are stopped and closed, the EAL is cleaned up.

use crate::config::{Config, Device};
use std::path::Path;

/// `mpgw check-config FILE`.
pub fn check_config(path: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    println!("{}: ok", path.display());
    println!(
        "  workers on lcores {:?} (main lcore {})",
        cfg.dataplane.workers, cfg.dataplane.main_lcore
    );
    for p in &cfg.ports {
        let dev = match p.device() {
            Device::Pci(a) => format!("pci {a}"),
            Device::Vdev { spec, .. } => format!("vdev {spec}"),
        };
        let addrs: Vec<String> = p
            .ipv4
            .iter()
            .map(ToString::to_string)
            .chain(p.ipv6.iter().map(ToString::to_string))
            .collect();
        let flags: Vec<String> = p
            .flags
            .iter()
            .map(|f| format!("{f:?}").to_lowercase())
            .collect();
        let mut extra = format!(", mtu {}", p.mtu);
        if let Some(mss) = p.mss_clamp {
            extra += &format!(", mss_clamp {mss}");
        }
        if let Some(vlan) = p.vlan {
            extra += &format!(", vlan {vlan}");
        }
        if !flags.is_empty() {
            extra += &format!(", flags {}", flags.join(" "));
        }
        println!("  port {}: {dev}, {}{extra}", p.name, addrs.join(", "));
    }
    for l in &cfg.listeners {
        let backends: Vec<String> = l.backends.iter().map(ToString::to_string).collect();
        let role = format!("{:?}", l.role).to_lowercase();
        let to = if backends.is_empty() {
            "the original destination".to_string()
        } else {
            backends.join(", ")
        };
        match l.listen {
            Some(listen) => println!("  listener {listen} ({role}) → {to}"),
            None => {
                let dports: Vec<String> = l
                    .destination_ports
                    .iter()
                    .map(|r| match r.bounds() {
                        (a, b) if a == b => a.to_string(),
                        (a, b) => format!("{a}-{b}"),
                    })
                    .collect();
                let dports = if dports.is_empty() {
                    "any port".to_string()
                } else {
                    format!("ports {}", dports.join(", "))
                };
                println!(
                    "  transparent listener ({role}) on {}: any foreign destination, {dports} \
                     → {to} (answered as the destination)",
                    l.ports.join(", ")
                );
            }
        }
    }
    if cfg.mptcp.add_addr_accepted > 0 {
        println!(
            "  path manager {:?}, subflows {}, add_addr_accepted {}",
            cfg.mptcp.path_manager, cfg.mptcp.subflows, cfg.mptcp.add_addr_accepted
        );
    }
    match cfg.dataplane.flow_rules {
        0 => println!(
            "  flow rules: off (dataplane.flow_rules = 0): joined subflows are handed over"
        ),
        n => println!(
            "  flow rules: up to {n} rte_flow rules per port steer joined subflows to their owner \
             worker's queue (with several workers, on ports whose PMD takes a trial rule at start)"
        ),
    }
    if let Some(addr) = cfg.metrics.listen {
        println!("  metrics on http://{addr}/metrics (also /healthz, /readyz)");
    }
    println!("  EAL: {}", eal_args(&cfg, &[]).to_argv().join(" "));
    Ok(())
}

/// The EAL arguments a configuration implies, plus pass-through ones.
fn eal_args(cfg: &Config, extra: &[String]) -> dataplane::eal_args::EalArgs {
    let mut args = dataplane::eal_args::EalArgs {
        app_name: "mpgw".into(),
        main_lcore: cfg.dataplane.main_lcore,
        worker_lcores: cfg.dataplane.workers.clone(),
        file_prefix: cfg.eal.file_prefix.clone(),
        no_huge: cfg.eal.no_huge,
        memory_mb: cfg.eal.memory_mb,
        no_pci: cfg.eal.no_pci,
        lcore_cpus: cfg.eal.lcore_cpus.iter().map(|&[l, c]| (l, c)).collect(),
        no_shconf: false,
        vdevs: Vec::new(),
        allow: Vec::new(),
        log_level: None,
        extra: cfg.eal.args.iter().chain(extra).cloned().collect(),
    };
    for p in &cfg.ports {
        match p.device() {
            Device::Pci(a) => args.allow.push(a.to_owned()),
            Device::Vdev { spec, .. } => args.vdevs.push(spec.to_owned()),
        }
    }
    args
}

/// `mpgw run --config FILE [-- EAL args]`.
pub fn run(path: &Path, extra_eal: &[String]) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    let log = init_logging(&cfg.log.level);
    let eal = eal_args(&cfg, extra_eal);
    imp::run(cfg, eal, path, log)
}

/// Logging to stderr under `level` (`RUST_LOG` overrides it); the handle changes the
/// filter on reload (`None` when a subscriber was already installed).
fn init_logging(level: &str) -> Option<crate::reload::LogHandle> {
    use std::io::IsTerminal;
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .ok()
        .map(|()| handle)
}

#[cfg(not(dpdk))]
mod imp {
    use super::*;

    pub fn run(
        _cfg: Config,
        _eal: dataplane::eal_args::EalArgs,
        _path: &Path,
        _log: Option<crate::reload::LogHandle>,
    ) -> anyhow::Result<()> {
        anyhow::bail!(
            "this mpgw was built without DPDK (libdpdk-dev was not found at build time); \
             install it (deploy/setup.sh) and rebuild"
        )
    }
}

#[cfg(dpdk)]
mod imp {
    use super::*;
    use crate::admin::AdminServer;
    use crate::cli;
    use crate::config::PortFlag;
    use crate::flow::{self, Capability, EthFlows, FlowRules};
    use crate::link::{wait_tick, LinkEvent, LinkMonitor, LinkSource, LinkWaker};
    use crate::metrics::{self, DeviceSnapshot, PoolSample, PortCounters, PortSample};
    use anyhow::Context;
    use dataplane::diag::DiagMode;
    use dataplane::dpdk::{
        lcore, Eal, EthDev, Layout, LinkWatch, Mempool, Pdump, PortConfig as DevConfig,
    };
    use dataplane::flow_steer::{FlowSteer, REQUEST_QUEUE};
    use dataplane::host::{HostPort, IfAddr};
    use dataplane::mptcp::crypto::KeySource;
    use dataplane::mptcp::mib::Mib;
    use dataplane::mptcp::stack::{Config as MptcpSettings, Coupling, SchedulerKind};
    use dataplane::mptcp::subflow::DATA_OPTION_SPACE;
    use dataplane::pm::{Endpoint, PathManager, PathManagerKind};
    use dataplane::relay::{Accept, Listener, RelayConfig};
    use dataplane::stats::{self, Counter, CounterReader, PathCounter};
    use dataplane::tcp::secrets::Secrets;
    use dataplane::tcp::table::TableConfig;
    use dataplane::transparent::Rule;
    use dataplane::wire::ethernet::MacAddr;
    use dataplane::worker::{Command, Peers, Reconfigure, TcpSetup, Worker, WorkerPort};
    use serde_json::{json, Map, Value};
    use std::net::IpAddr;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// Data room of each mbuf: a full 1518-byte frame after the standard headroom.
    const MBUF_DATA_ROOM: u16 = 2048 + 128;
    /// How often the control loop wakes up (at once on a port's LSC interrupt).
    const CONTROL_TICK: Duration = Duration::from_millis(20);
    /// Control ticks between two refreshes of what the telemetry socket answers.
    const TELEMETRY_EVERY: u32 = 25;

    /// The mbuf pool's layout: packed where `net_af_xdp` ports take it as their UMEM
    /// ([`Layout::Packed`]), unless a PCI device, which needs IO addresses, shares it.
    fn pool_layout(cfg: &Config) -> Layout {
        let af_xdp = cfg.ports.iter().any(
            |p| matches!(p.device(), Device::Vdev { name, .. } if name.starts_with("net_af_xdp")),
        );
        let pci = cfg
            .ports
            .iter()
            .any(|p| matches!(p.device(), Device::Pci(_)));
        match (af_xdp, pci) {
            (true, false) => Layout::Packed,
            (true, true) => {
                tracing::warn!(
                    "net_af_xdp ports share the mbuf pool with PCI devices: the \
                    pool keeps DPDK's layout, and mbufs outside the UMEM it registers are lost"
                );
                Layout::Dma
            }
            _ => Layout::Dma,
        }
    }

    struct RunningPort {
        name: String,
        dev: EthDev,
        /// Its LSC callback, where the PMD has link-state-change interrupts.
        lsc: Option<LinkWatch>,
    }

    struct RunningWorker {
        lcore: u32,
        counters: CounterReader,
        commands: crossbeam::channel::Sender<Command>,
        join: lcore::LcoreJoin,
    }

    pub fn run(
        mut config: Config,
        eal_args: dataplane::eal_args::EalArgs,
        path: &Path,
        log: Option<crate::reload::LogHandle>,
    ) -> anyhow::Result<()> {
        let cfg = &config;
        tracing::info!(argv = %eal_args.to_argv().join(" "), "initialising EAL");
        let eal = Eal::init(&eal_args).context("EAL initialisation failed")?;
        // Before the ports start: lets `dpdk-dumpcap --file-prefix …` capture them.
        let pdump = Pdump::init()
            .map_err(|e| tracing::warn!("dpdk-dumpcap cannot attach: {e}"))
            .ok();
        if cfg.eal.no_huge {
            tracing::info!("no_huge: DPDK secondary processes (dpdk-dumpcap) cannot attach");
        }
        let n_workers = cfg.dataplane.workers.len();
        let layout = pool_layout(cfg);
        let pool = Mempool::with_layout(
            "mpgw_pool",
            cfg.dataplane.mbufs_per_worker * n_workers as u32,
            cfg.dataplane.mempool_cache,
            MBUF_DATA_ROOM,
            -1,
            layout,
        )
        .context("cannot create the mbuf pool (more memory: [eal] memory_mb or hugepages)")?;
        if layout == Layout::Packed && pool.mem_chunks() > 1 {
            tracing::warn!(
                chunks = pool.mem_chunks(),
                "mbuf pool in several memory chunks: net_af_xdp ports can use the first only"
            );
        }

        let queues = u16::try_from(n_workers).context("dataplane.workers: too many")?;
        // LSC callbacks wake this thread's control loop.
        let waker = LinkWaker::for_current_thread();
        let mut ports = Vec::new();
        let mut link_sources = Vec::new();
        let mut per_worker: Vec<Vec<WorkerPort<_>>> = (0..n_workers).map(|_| Vec::new()).collect();
        let mut capabilities = Vec::new();
        for (i, pc) in cfg.ports.iter().enumerate() {
            let name = match pc.device() {
                Device::Pci(a) => a,
                Device::Vdev { name, .. } => name,
            };
            let port_id = eal.port_by_name(name).with_context(|| {
                format!(
                    "ports[{i}].device: no DPDK port named '{name}' (ports found: {:?})",
                    eal.port_ids()
                )
            })?;
            let dev_cfg = DevConfig {
                rx_queues: queues,
                tx_queues: queues,
                rx_desc: cfg.dataplane.descriptors,
                tx_desc: cfg.dataplane.descriptors,
                mtu: Some(pc.mtu),
                promiscuous: pc.mac.is_some(),
                ..DevConfig::default()
            };
            let mut dev = EthDev::open(port_id, &dev_cfg, &pool)
                .with_context(|| format!("ports[{i}] ({}): cannot configure {name}", pc.name))?;
            let mac = pc.mac.unwrap_or(MacAddr(dev.mac_addr()));
            let eff = dev.effective();
            tracing::info!(
                port = %pc.name, device = name, %mac, driver = %dev.info().driver,
                rx_queues = eff.rx_queues, rss_hf = format!("{:#x}", eff.rss_hf),
                tx_chains = dev.tx_chains(), link_up = dev.link().up, "port ready"
            );
            if usize::from(eff.rx_queues) < n_workers || usize::from(eff.tx_queues) < n_workers {
                anyhow::bail!(
                    "ports[{i}] ({}): {name} has {} RX/{} TX queues, {n_workers} workers need one each \
                     (net_af_packet: add qpairs={n_workers} to the device)",
                    pc.name, eff.rx_queues, eff.tx_queues
                );
            }
            let addrs: Vec<IfAddr> = pc
                .ipv4
                .iter()
                .map(|n| IfAddr {
                    addr: n.addr().into(),
                    prefix: n.prefix_len(),
                })
                .chain(pc.ipv6.iter().map(|n| IfAddr {
                    addr: n.addr().into(),
                    prefix: n.prefix_len(),
                }))
                .collect();
            let mut host = HostPort::new(mac, &addrs, pc.gateway4, pc.gateway6);
            host.set_vlan(pc.vlan);
            host.accept_also(cfg.ports.iter().flat_map(|p| {
                p.ipv4
                    .iter()
                    .map(|n| IpAddr::from(n.addr()))
                    .chain(p.ipv6.iter().map(|n| IpAddr::from(n.addr())))
            }));
            let rss = dev.rss().cloned();
            if let Some(r) = &rss {
                tracing::info!(port = %pc.name, key_len = r.key().len(), reta = r.reta().len(),
                    "RSS programmed: replies steered to their opener's queue");
            }
            for (w, q) in dev.take_queues()?.into_iter().take(n_workers).enumerate() {
                per_worker[w].push(WorkerPort::new(q, host.clone()).with_rss(rss.clone()));
            }
            capabilities.push(flow_capability(cfg, &dev, pc, queues - 1));
            link_sources.push(LinkSource::for_port(&dev.info().driver, &pc.device));
            let lsc = if dev.effective().lsc {
                let waker = waker.clone();
                dev.watch_link(move || waker.wake())
                    .map_err(|e| tracing::warn!(port = %pc.name, "no LSC callback: {e}"))
                    .ok()
            } else {
                None
            };
            ports.push(RunningPort {
                name: pc.name.clone(),
                dev,
                lsc,
            });
        }

        let mut admin = AdminServer::bind(&cfg.admin.socket)?;
        let metrics = cfg
            .metrics
            .listen
            .map(metrics::Endpoint::bind)
            .transpose()?;
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, stop.clone())?;
        }
        let hup = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
        let mut links = LinkMonitor::new(link_sources);
        for (p, l) in ports.iter().zip(links.ports()) {
            tracing::info!(
                port = %p.name, source = l.source.name(), lsc = p.lsc.is_some(),
                "link monitored"
            );
        }
        let mut reloads = Reloads::default();

        let signal = flagged_addresses(cfg, PortFlag::Signal);
        let path_manager = path_manager(cfg, &signal);
        // One secret for every worker: a SYN cookie issued by one verifies on another.
        let secrets = Secrets::random().context("no randomness for TCP secrets")?;
        let mut workers = Vec::new();
        let handoffs = dataplane::handoff::handoffs(queues);
        let steering_ports: Vec<bool> = capabilities.iter().map(Capability::supported).collect();
        let (flow_tx, flow_requests) = crossbeam::channel::bounded(REQUEST_QUEUE);
        // Where the relay's local port hand-out starts, the same for every worker.
        let port_start = KeySource::from_os()
            .context("no randomness for local ports")?
            .nonce() as u16;
        for ((&lcore_id, wports), handoff) in
            cfg.dataplane.workers.iter().zip(per_worker).zip(handoffs)
        {
            let (writer, reader) = stats::counters();
            let (tx, rx) = crossbeam::channel::bounded(16);
            let keys = KeySource::from_os().context("no randomness for MPTCP keys")?;
            let worker = (workers.len() as u16, cfg.dataplane.workers.len() as u16);
            let tcp = TcpSetup {
                table: tcp_table_config(cfg),
                secrets: secrets.clone(),
                mptcp: MptcpSettings {
                    backup_addrs: flagged_addresses(cfg, PortFlag::Backup),
                    plain_mss_reserve: if cfg.relay.fit_mss {
                        DATA_OPTION_SPACE as u16
                    } else {
                        0
                    },
                    fit_listeners: cfg.listeners.iter().filter_map(|l| l.listen).collect(),
                    ..mptcp_config(&cfg.mptcp)
                },
                keys,
                signal: signal.clone(),
                worker,
                diag: cfg
                    .diag
                    .iter()
                    .map(|d| (d.listen, diag_mode(d.mode)))
                    .collect(),
                relay: relay_config(cfg, worker, port_start),
                listeners: cfg.listeners.iter().map(|l| listener(cfg, l)).collect(),
                path_manager: path_manager.clone(),
            };
            let flows = FlowSteer::new(
                worker.0,
                worker.1,
                steering_ports.clone(),
                cfg.dataplane.flow_rules as usize,
                flow_tx.clone(),
            );
            let join = lcore::launch(lcore_id, move || {
                Worker::new(wports, tcp, Peers { handoff }, writer, rx, 0)
                    .with_flow_steering(flows)
                    .run()
            })
            .with_context(|| format!("cannot start the worker on lcore {lcore_id}"))?;
            workers.push(RunningWorker {
                lcore: lcore_id,
                counters: reader,
                commands: tx,
                join,
            });
        }
        tracing::info!(
            workers = workers.len(),
            ports = ports.len(),
            "workers running"
        );
        let metrics = metrics
            .map(|m| {
                m.serve(
                    workers
                        .iter()
                        .map(|w| (w.lcore, w.counters.clone()))
                        .collect(),
                )
            })
            .transpose()?;

        drop(flow_tx);
        let mut flows = FlowRules::new(
            EthFlows::new(
                ports
                    .iter()
                    .zip(&cfg.ports)
                    .map(|(p, pc)| (&p.dev, pc.vlan))
                    .collect(),
            ),
            cfg.dataplane.flow_rules as usize,
            capabilities,
        );
        let mut monitor = Monitor::new(workers.len());
        let published = crate::telemetry::Published::default();
        if let Err(e) = published.register() {
            tracing::warn!("telemetry commands not registered: {e:#}");
        }
        let mut captures = crate::capture::Server::default();
        let port_names: Vec<String> = ports.iter().map(|p| p.name.clone()).collect();
        let commands: Vec<_> = workers.iter().map(|w| &w.commands).collect();
        let mut tick = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let events = links.poll(|i| ports.get(i).is_some_and(|p| p.dev.link().up));
            for ev in events {
                link_event(ev, &config, &workers, &links, &ports);
            }
            flows.drain(&flow_requests, flow::PER_TICK);
            let mut reload_now = hup.swap(false, Ordering::Relaxed);
            if tick % TELEMETRY_EVERY == 0 {
                published.update(stats_json(&workers, &ports, &links, &reloads, &flows));
            }
            tick = tick.wrapping_add(1);
            admin.poll(|req| match req {
                "stats" => stats_json(&workers, &ports, &links, &reloads, &flows),
                "ss" => cli::ss::answer(&snapshots(&workers), &lcores(&workers)),
                "paths" => cli::paths::answer(
                    &path_ports(&config, &ports, &links, &workers),
                    &snapshots(&workers),
                ),
                "reload" => {
                    reload_now = false;
                    reload(path, &mut config, &workers, log.as_ref(), &mut reloads)
                }
                other => json!({ "error": format!("unknown request '{other}'") }),
            });
            monitor.serve(&mut admin, &workers);
            if let Some(m) = &metrics {
                m.poll(|| device_snapshot(&ports, &links, &pool, &flows));
            }
            if reload_now {
                reload(path, &mut config, &workers, log.as_ref(), &mut reloads);
            }
            for (line, client) in admin.take_held() {
                captures.accept(
                    &line,
                    client,
                    &port_names,
                    &commands,
                    capture_dropped(&workers),
                );
            }
            captures.poll(&commands, capture_dropped(&workers));
            wait_tick(CONTROL_TICK);
        }

        tracing::info!("stopping");
        if let Some(m) = metrics {
            m.stop();
        }
        captures.stop(&commands, capture_dropped(&workers));
        drop(commands);
        for w in &workers {
            let _ = w.commands.send(Command::Stop);
        }
        let final_stats = stats_json(&workers, &ports, &links, &reloads, &flows);
        let mut failed = Vec::new();
        for w in workers {
            if let Err(e) = w.join.join() {
                tracing::error!(lcore = w.lcore, "worker failed: {e}");
                failed.push(w.lcore);
            }
        }
        tracing::info!(stats = %final_stats["total"], "final counters");
        // Before the ports stop: a PMD without FLOW_RULE_KEEP would lose them anyway.
        flows.clear();
        drop(flows);
        drop(pdump);
        drop(ports);
        drop(pool);
        drop(eal);
        if !failed.is_empty() {
            anyhow::bail!("workers on lcores {failed:?} failed");
        }
        Ok(())
    }

    /// Probes whether `dev` takes the rules that steer joined subflows (to `queue`,
    /// its last), unless `[dataplane] flow_rules` is 0; logs the answer once.
    fn flow_capability(
        cfg: &Config,
        dev: &EthDev,
        pc: &crate::config::PortConfig,
        queue: u16,
    ) -> Capability {
        if cfg.dataplane.flow_rules == 0 {
            return Capability::Off;
        }
        let addrs: Vec<IpAddr> = port_addresses(pc).collect();
        let cap = flow::probe(dev, &addrs, pc.vlan, queue);
        match &cap {
            Capability::Supported => tracing::info!(port = %pc.name, driver = %dev.info().driver,
                rules = cfg.dataplane.flow_rules, "rte_flow steering of joined subflows available"),
            Capability::Unsupported(e) => {
                tracing::info!(port = %pc.name, driver = %dev.info().driver,
                error = %e, "rte_flow steering of joined subflows unsupported: they are handed over")
            }
            Capability::Off => {}
        }
        cap
    }

    /// Reloads applied and refused.
    #[derive(Default)]
    struct Reloads {
        applied: u64,
        refused: u64,
    }

    /// Sends `cmd` to every worker (waiting a little for room: workers look at their
    /// commands between bursts).
    fn tell_workers(workers: &[RunningWorker], mut cmd: impl FnMut() -> Command) {
        for w in workers {
            if w.commands
                .send_timeout(cmd(), Duration::from_secs(1))
                .is_err()
            {
                tracing::error!(lcore = w.lcore, "worker does not take commands");
            }
        }
    }

    /// Tells the workers a port's link went down (failover) or came back.
    fn link_event(
        ev: LinkEvent,
        cfg: &Config,
        workers: &[RunningWorker],
        links: &LinkMonitor,
        ports: &[RunningPort],
    ) {
        let i = match ev {
            LinkEvent::Down(i, _) => i,
            LinkEvent::Up(i) => i,
        };
        let (Some(pc), Some(link)) = (cfg.ports.get(i), links.ports().get(i)) else {
            return;
        };
        let addrs: Vec<IpAddr> = port_addresses(pc).collect();
        let name = ports.get(i).map_or("?", |p| p.name.as_str());
        let port = i as u16;
        match ev {
            LinkEvent::Down(_, detected) => {
                tracing::warn!(port = %name, source = link.source.name(), "link down: failing over");
                link.failover_us.store(0, Ordering::Relaxed);
                tell_workers(workers, || Command::PortDown {
                    port,
                    addrs: addrs.clone(),
                    detected,
                    failover_us: link.failover_us.clone(),
                });
            }
            LinkEvent::Up(_) => {
                tracing::info!(port = %name, "link up: announcing and joining again");
                tell_workers(workers, || Command::PortUp {
                    port,
                    addrs: addrs.clone(),
                });
            }
        }
    }

    /// Reloads the configuration file: applies what changed, or refuses with the
    /// reason and changes nothing. Returns the admin answer.
    fn reload(
        path: &Path,
        config: &mut Config,
        workers: &[RunningWorker],
        log: Option<&crate::reload::LogHandle>,
        reloads: &mut Reloads,
    ) -> Value {
        let prepared = crate::reload::prepare(path, config).and_then(|p| {
            crate::reload::set_log_level(log, &p.config.log.level)?;
            Ok(p)
        });
        let p = match prepared {
            Ok(p) => p,
            Err(e) => {
                reloads.refused += 1;
                tracing::warn!("reload refused: {e:#}");
                return json!({ "error": format!("reload refused: {e:#}") });
            }
        };
        let signal = flagged_addresses(&p.config, PortFlag::Signal);
        let pm = path_manager(&p.config, &signal);
        let mptcp = MptcpSettings {
            backup_addrs: flagged_addresses(&p.config, PortFlag::Backup),
            ..mptcp_config(&p.config.mptcp)
        };
        tell_workers(workers, || {
            Command::Reconfigure(Box::new(Reconfigure {
                mptcp: mptcp.clone(),
                signal: signal.clone(),
                path_manager: pm.clone(),
            }))
        });
        let applied: Vec<String> = p.changes.iter().map(ToString::to_string).collect();
        reloads.applied += 1;
        tracing::info!(changes = ?applied, "configuration reloaded");
        *config = p.config;
        json!({ "applied": applied })
    }

    /// TCP settings: connections from a port's address use that port's MSS (its MTU
    /// less the headers of the address's family, or `mss_clamp` if lower).
    fn tcp_table_config(cfg: &Config) -> TableConfig {
        let mut t = TableConfig::default();
        for p in &cfg.ports {
            for addr in port_addresses(p) {
                let mss = dataplane::tcp::Config::mss_for_mtu(p.mtu, addr.is_ipv6());
                t.local_mss
                    .push((addr, p.mss_clamp.map_or(mss, |c| c.min(mss))));
            }
        }
        t
    }

    fn mptcp_config(m: &crate::config::MptcpConfig) -> MptcpSettings {
        use crate::config::{CouplingConfig as C, SchedulerConfig as K};
        MptcpSettings {
            enabled: m.enabled,
            checksum: m.checksum_enabled,
            subflows: m.subflows,
            scheduler: match m.scheduler {
                K::Default => SchedulerKind::Default,
                K::Roundrobin => SchedulerKind::RoundRobin,
                K::Redundant => SchedulerKind::Redundant,
                K::Blest => SchedulerKind::Blest,
            },
            coupling: match m.coupled_cc {
                C::None => Coupling::None,
                C::Lia => Coupling::Lia,
                C::Olia => Coupling::Olia,
            },
            syn_retrans_before_tcp_fallback: m.syn_retrans_before_tcp_fallback,
            stale_loss_cnt: m.stale_loss_cnt,
            recv_window: m.recv_buffer,
            send_budget: m.send_buffer,
            add_addr_accepted: m.add_addr_accepted,
            allow_join_initial_addr_port: m.allow_join_initial_addr_port,
            add_addr_timeout: Duration::from_secs(u64::from(m.add_addr_timeout)),
            close_timeout: Duration::from_secs(u64::from(m.close_timeout)),
            ..MptcpSettings::default()
        }
    }

    /// The addresses of the ports with `flag`, in port order.
    fn flagged_addresses(cfg: &Config, flag: PortFlag) -> Vec<IpAddr> {
        cfg.ports
            .iter()
            .filter(|p| p.flags.contains(&flag))
            .flat_map(port_addresses)
            .collect()
    }

    fn port_addresses(p: &crate::config::PortConfig) -> impl Iterator<Item = IpAddr> + '_ {
        p.ipv4
            .iter()
            .map(|n| IpAddr::from(n.addr()))
            .chain(p.ipv6.iter().map(|n| IpAddr::from(n.addr())))
    }

    /// The path manager over the `subflow`/`fullmesh` port addresses. Address ids:
    /// the announced (`signal`) addresses have 1, 2, … in order (as the stack numbers
    /// them), the other endpoints the ids after those, then the remaining port
    /// addresses (a subflow the routes start from one, to an announced address).
    fn path_manager(cfg: &Config, signal: &[IpAddr]) -> PathManager {
        use crate::config::PathManagerConfig as K;
        let mut next_id = signal.len() as u8 + 1;
        let mut id_of = |addr: IpAddr| match signal.iter().position(|&a| a == addr) {
            Some(i) => i as u8 + 1,
            None => {
                next_id = next_id.saturating_add(1);
                next_id - 1
            }
        };
        let endpoint_port = |p: &&crate::config::PortConfig| {
            p.flags
                .iter()
                .any(|f| matches!(f, PortFlag::Subflow | PortFlag::Fullmesh))
        };
        let mut endpoints = Vec::new();
        for p in cfg.ports.iter().filter(endpoint_port) {
            for addr in port_addresses(p) {
                endpoints.push(Endpoint {
                    addr,
                    id: id_of(addr),
                    backup: p.flags.contains(&PortFlag::Backup),
                });
            }
        }
        let others = cfg
            .ports
            .iter()
            .filter(|p| !endpoint_port(p))
            .flat_map(port_addresses)
            .map(|addr| (addr, id_of(addr)))
            .collect();
        let kind = match cfg.mptcp.path_manager {
            K::Default => PathManagerKind::Default,
            K::Fullmesh => PathManagerKind::Fullmesh,
            K::Ndiffports => PathManagerKind::Ndiffports(cfg.mptcp.ndiffports),
        };
        PathManager::new(kind, endpoints).with_address_ids(others)
    }

    fn relay_config(cfg: &Config, worker: (u16, u16), start: u16) -> RelayConfig {
        let [first, last] = cfg.relay.local_ports;
        RelayConfig {
            max_pairs: cfg.relay.max_pairs as usize,
            hold_down: Duration::from_secs(u64::from(cfg.relay.backend_hold_down)),
            ports: (first, last - first + 1),
            worker,
            start,
        }
    }

    fn listener(cfg: &Config, l: &crate::config::ListenerConfig) -> Listener {
        let accept = match l.listen {
            Some(addr) => Accept::Addr(addr),
            None => Accept::Transparent(Rule {
                ports: l
                    .ports
                    .iter()
                    .filter_map(|name| cfg.ports.iter().position(|p| &p.name == name))
                    .map(|i| i as u16)
                    .collect(),
                dst_ports: l.destination_ports.iter().map(|r| r.bounds()).collect(),
            }),
        };
        Listener {
            accept,
            backends: l.backends.clone(),
            mptcp: l.role == crate::config::Role::Edge,
        }
    }

    fn diag_mode(m: crate::config::DiagModeConfig) -> DiagMode {
        use crate::config::DiagModeConfig as C;
        match m {
            C::Discard => DiagMode::Discard,
            C::Echo => DiagMode::Echo,
            C::Source => DiagMode::Source,
        }
    }

    fn snapshots(workers: &[RunningWorker]) -> Vec<Option<dataplane::introspect::Snapshot>> {
        let commands: Vec<_> = workers.iter().map(|w| &w.commands).collect();
        cli::snapshots(&commands, cli::SNAPSHOT_WAIT)
    }

    fn lcores(workers: &[RunningWorker]) -> Vec<u32> {
        workers.iter().map(|w| w.lcore).collect()
    }

    fn path_ports(
        cfg: &Config,
        ports: &[RunningPort],
        links: &LinkMonitor,
        workers: &[RunningWorker],
    ) -> Vec<cli::paths::Port> {
        let path_bytes = stats::merge_path_bytes(workers.iter().map(|w| &w.counters));
        cfg.ports
            .iter()
            .zip(ports)
            .zip(links.ports())
            .zip(path_bytes)
            .map(|(((pc, p), l), path)| {
                let s = p.dev.stats().unwrap_or_default();
                cli::paths::Port {
                    name: p.name.clone(),
                    flags: pc
                        .flags
                        .iter()
                        .map(|f| format!("{f:?}").to_lowercase())
                        .collect(),
                    link_up: l.up,
                    link_downs: l.downs,
                    path,
                    addrs: pc
                        .ipv4
                        .iter()
                        .map(|&n| n.into())
                        .chain(pc.ipv6.iter().map(|&n| n.into()))
                        .collect(),
                    rx_bytes: s.ibytes,
                    tx_bytes: s.obytes,
                }
            })
            .collect()
    }

    /// Connection events from the workers to the admin socket's monitor clients:
    /// the workers record and send events only while a client is attached.
    struct Monitor {
        events: Vec<crossbeam::channel::Receiver<dataplane::introspect::MonitorEvent>>,
        senders: Vec<crossbeam::channel::Sender<dataplane::introspect::MonitorEvent>>,
        attached: bool,
    }

    impl Monitor {
        /// Events queued per worker before it drops (and counts) them.
        const QUEUE: usize = 4096;

        fn new(workers: usize) -> Self {
            let (senders, events) = (0..workers)
                .map(|_| crossbeam::channel::bounded(Self::QUEUE))
                .unzip();
            Monitor {
                events,
                senders,
                attached: false,
            }
        }

        /// Attaches or detaches the workers as clients come and go; passes events on.
        fn serve(&mut self, admin: &mut AdminServer, workers: &[RunningWorker]) {
            let want = admin.monitors() > 0;
            if want != self.attached {
                let mut all = true;
                for (w, tx) in workers.iter().zip(&self.senders) {
                    let events = want.then(|| tx.clone());
                    all &= w.commands.try_send(Command::Monitor(events)).is_ok();
                }
                // Retried at the next tick when a command queue was full.
                if all {
                    self.attached = want;
                }
            }
            let mut lines = Vec::new();
            for (i, rx) in self.events.iter().enumerate() {
                lines.extend(rx.try_iter().map(|ev| cli::monitor::event(&ev, i)));
            }
            admin.broadcast(&lines);
        }
    }

    /// Ports (links as the link monitor sees them) and the pool for the metrics
    /// endpoint.
    fn device_snapshot(
        ports: &[RunningPort],
        links: &LinkMonitor,
        pool: &Mempool,
        flows: &FlowRules<EthFlows<'_>>,
    ) -> DeviceSnapshot {
        let ports = ports
            .iter()
            .zip(links.ports())
            .enumerate()
            .map(|(i, (p, l))| PortSample {
                name: p.name.clone(),
                link_up: l.up,
                link_downs: l.downs,
                last_failover_us: l.failover_us.load(Ordering::Relaxed),
                lsc_events: p.lsc.as_ref().map(LinkWatch::events),
                flow_steering: flows.port(i).is_some_and(|(c, _)| c.supported()),
                flows: flows.port(i).map(|(_, s)| s).unwrap_or_default(),
                stats: p.dev.stats().ok().map(|s| PortCounters {
                    rx_packets: s.ipackets,
                    tx_packets: s.opackets,
                    rx_bytes: s.ibytes,
                    tx_bytes: s.obytes,
                    rx_missed: s.imissed,
                    rx_nombuf: s.rx_nombuf,
                    rx_errors: s.ierrors,
                    tx_errors: s.oerrors,
                }),
            })
            .collect();
        let pools = vec![PoolSample {
            name: pool.name().to_owned(),
            in_use: pool.in_use().into(),
            available: pool.available().into(),
        }];
        DeviceSnapshot { ports, pools }
    }

    /// Captured frames the workers could not queue, all workers.
    fn capture_dropped(workers: &[RunningWorker]) -> u64 {
        workers
            .iter()
            .map(|w| w.counters.get(Counter::CaptureDropped))
            .sum()
    }

    fn counter_map(values: &[u64]) -> Map<String, Value> {
        Counter::ALL
            .iter()
            .zip(values)
            .map(|(c, v)| (c.name().to_owned(), json!(v)))
            .collect()
    }

    fn stats_json(
        workers: &[RunningWorker],
        ports: &[RunningPort],
        links: &LinkMonitor,
        reloads: &Reloads,
        flows: &FlowRules<EthFlows<'_>>,
    ) -> Value {
        let total = stats::merge(workers.iter().map(|w| &w.counters));
        let per_worker: Vec<Value> = workers
            .iter()
            .map(|w| json!({"lcore": w.lcore, "counters": counter_map(&w.counters.snapshot())}))
            .collect();
        let path_bytes = stats::merge_path_bytes(workers.iter().map(|w| &w.counters));
        let ports: Vec<Value> = ports
            .iter()
            .zip(links.ports())
            .zip(path_bytes)
            .enumerate()
            .map(|(i, ((p, l), path))| {
                let s = p.dev.stats().unwrap_or_default();
                let (cap, f) = flows
                    .port(i)
                    .map(|(c, f)| (c.describe(workers.len()), f))
                    .unwrap_or_default();
                let mut port = json!({
                    "name": p.name,
                    "link_up": l.up, "link_source": l.source.name(), "link_downs": l.downs,
                    "dpdk_link_up": p.dev.link().up,
                    "lsc_events": p.lsc.as_ref().map(LinkWatch::events),
                    "lsc_last_unix_us": p.lsc.as_ref().and_then(LinkWatch::last_event)
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
                    "last_failover_us": l.failover_us.load(Ordering::Relaxed),
                    "rx_packets": s.ipackets, "tx_packets": s.opackets,
                    "rx_bytes": s.ibytes, "tx_bytes": s.obytes,
                    "rx_missed": s.imissed, "rx_nombuf": s.rx_nombuf,
                    "rx_errors": s.ierrors, "tx_errors": s.oerrors,
                    "flow_steering": cap, "flow_rules_active": f.active,
                    "flow_rules_installed": f.installed, "flow_rules_removed": f.removed,
                    "flow_rules_failed": f.failed, "flow_rules_refused": f.refused,
                });
                for c in PathCounter::ALL {
                    port[format!("path_{}", c.name())] = json!(path[c as usize]);
                }
                port
            })
            .collect();
        let mib: Map<String, Value> = Mib::ALL
            .iter()
            .zip(stats::merge_mib(workers.iter().map(|w| &w.counters)))
            .map(|(m, v)| (format!("MPTcpExt{}", m.name()), json!(v)))
            .collect();
        let control = json!({ "reloads": reloads.applied, "reloads_refused": reloads.refused });
        json!({ "total": counter_map(&total), "mptcp_mib": mib, "workers": per_worker, "ports": ports, "control": control })
    }
}
