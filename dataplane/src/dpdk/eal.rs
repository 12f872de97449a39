//! EAL start-up and shutdown.

use super::error::{Error, Result};
use std::ffi::{c_char, c_int, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// EAL command-line arguments, typed.
///
/// [`EalArgs::to_argv`] renders them in a fixed order with `extra` last, so anything not
/// covered here can still be passed through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalArgs {
    /// `argv[0]`, the program name EAL logs under.
    pub app_name: String,
    /// The main lcore (`--main-lcore`); it runs the caller of [`Eal::init`].
    pub main_lcore: u32,
    /// Worker lcores; together with the main lcore they make up `-l`.
    pub worker_lcores: Vec<u32>,
    /// `--file-prefix`: separates the runtime files of concurrent DPDK processes.
    pub file_prefix: Option<String>,
    /// `--no-huge`: anonymous memory instead of hugepages.
    pub no_huge: bool,
    /// `-m`: memory to preallocate, in MiB.
    pub memory_mb: Option<u32>,
    /// `--no-pci`: skip the PCI bus scan.
    pub no_pci: bool,
    /// `--no-shconf`: no shared config file (no secondary processes).
    pub no_shconf: bool,
    /// `--vdev` virtual devices, e.g. `net_ring0` or `net_af_packet0,iface=veth0`.
    pub vdevs: Vec<String>,
    /// `-a` PCI devices to allow, e.g. `0000:03:00.0`.
    pub allow: Vec<String>,
    /// `--log-level`, e.g. `notice` or `pmd.net.*:debug`.
    pub log_level: Option<String>,
    /// Further arguments, appended verbatim after all of the above.
    pub extra: Vec<String>,
}

impl Default for EalArgs {
    fn default() -> Self {
        Self {
            app_name: "mpgw".to_owned(),
            main_lcore: 0,
            worker_lcores: Vec::new(),
            file_prefix: None,
            no_huge: false,
            memory_mb: None,
            no_pci: false,
            no_shconf: false,
            vdevs: Vec::new(),
            allow: Vec::new(),
            log_level: None,
            extra: Vec::new(),
        }
    }
}

impl EalArgs {
    /// The argument vector handed to `rte_eal_init`, `argv[0]` included.
    pub fn to_argv(&self) -> Vec<String> {
        let mut workers = self.worker_lcores.clone();
        workers.sort_unstable();
        workers.dedup();
        let lcores = std::iter::once(self.main_lcore)
            .chain(workers.into_iter().filter(|&l| l != self.main_lcore))
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(",");

        let mut argv = vec![
            self.app_name.clone(),
            "-l".to_owned(),
            lcores,
            "--main-lcore".to_owned(),
            self.main_lcore.to_string(),
        ];
        let mut opt = |flag: &str, value: &str| {
            argv.push(flag.to_owned());
            argv.push(value.to_owned());
        };
        if let Some(prefix) = &self.file_prefix {
            opt("--file-prefix", prefix);
        }
        if let Some(mb) = self.memory_mb {
            opt("-m", &mb.to_string());
        }
        for vdev in &self.vdevs {
            opt("--vdev", vdev);
        }
        for dev in &self.allow {
            opt("-a", dev);
        }
        if let Some(level) = &self.log_level {
            opt("--log-level", level);
        }
        for (set, flag) in [
            (self.no_huge, "--no-huge"),
            (self.no_pci, "--no-pci"),
            (self.no_shconf, "--no-shconf"),
        ] {
            if set {
                argv.push(flag.to_owned());
            }
        }
        argv.extend(self.extra.iter().cloned());
        argv
    }
}

/// The initialised EAL. Every DPDK object of this layer holds a reference to it, and
/// `rte_eal_cleanup` runs when the last reference goes.
pub(crate) struct Runtime {
    /// The argument strings `rte_eal_init` saw; kept alive for as long as EAL runs.
    _argv: Vec<CString>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // SAFETY: EAL was initialised (a `Runtime` exists only after a successful
        // `rte_eal_init`), and nothing that uses DPDK is left: every such object holds an
        // `Arc<Runtime>`.
        let ret = unsafe { dpdk_sys::rte_eal_cleanup() };
        if ret < 0 {
            tracing::warn!(error = %Error::from_errno("rte_eal_cleanup", -ret), "EAL cleanup");
        }
    }
}

/// Set by the first [`Eal::init`]; EAL cannot be initialised twice in one process.
static INIT_CALLED: AtomicBool = AtomicBool::new(false);
/// The running EAL, for objects created without an explicit [`Eal`] handle.
static RUNTIME: Mutex<Option<Weak<Runtime>>> = Mutex::new(None);

/// The running EAL, or an error when [`Eal::init`] has not succeeded (or EAL is gone).
pub(crate) fn runtime() -> Result<Arc<Runtime>> {
    RUNTIME
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .and_then(Weak::upgrade)
        .ok_or_else(|| {
            Error::new(
                "EAL",
                libc::ENODEV,
                "EAL is not running (Eal::init not called, or already cleaned up)",
            )
        })
}

/// Handle on the initialised DPDK Environment Abstraction Layer.
pub struct Eal {
    _rt: Arc<Runtime>,
}

impl Eal {
    /// Initialises EAL with `args` (`rte_eal_init`). Succeeds at most once per process;
    /// later calls return an `EALREADY` error. The calling thread becomes the main lcore.
    pub fn init(args: &EalArgs) -> Result<Eal> {
        if INIT_CALLED.swap(true, Ordering::AcqRel) {
            return Err(Error::new(
                "rte_eal_init",
                libc::EALREADY,
                "EAL can be initialised only once per process",
            ));
        }
        let argv = args
            .to_argv()
            .into_iter()
            .map(CString::new)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::new("rte_eal_init", libc::EINVAL, format!("argument: {e}")))?;
        let argc = c_int::try_from(argv.len())
            .map_err(|_| Error::new("rte_eal_init", libc::E2BIG, "too many arguments"))?;
        let mut ptrs: Vec<*mut c_char> = argv.iter().map(|a| a.as_ptr().cast_mut()).collect();
        ptrs.push(std::ptr::null_mut());
        // SAFETY: `ptrs` is a NULL-terminated array of `argc` valid C strings that outlive
        // EAL (kept in the `Runtime`); EAL may permute the pointer array, never the strings.
        let ret = unsafe { dpdk_sys::rte_eal_init(argc, ptrs.as_mut_ptr()) };
        if ret < 0 {
            return Err(Error::last("rte_eal_init"));
        }
        let rt = Arc::new(Runtime { _argv: argv });
        *RUNTIME.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::downgrade(&rt));
        Ok(Eal { _rt: rt })
    }

    /// The main lcore's id.
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: EAL is initialised (`self` exists); reads the global config.
        unsafe { dpdk_sys::rte_get_main_lcore() }
    }

    /// The enabled worker lcores (all but the main one), in ascending order.
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut lcores = Vec::new();
        // `rte_get_next_lcore` starts at `i + 1`, so begin just "before" lcore 0.
        let mut i = u32::MAX;
        loop {
            // SAFETY: EAL is initialised; the call only reads the lcore table.
            i = unsafe { dpdk_sys::rte_get_next_lcore(i, 1, 0) };
            if i >= dpdk_sys::RTE_MAX_LCORE {
                return lcores;
            }
            lcores.push(i);
        }
    }

    /// All valid ethdev ports not owned by another DPDK component.
    pub fn port_ids(&self) -> Vec<u16> {
        let mut ports = Vec::new();
        let mut next = 0u16;
        loop {
            // SAFETY: EAL is initialised; the call only reads the ethdev table.
            let p = unsafe { dpdk_sys::dpdk_sys_eth_next_port(next) };
            if u32::from(p) >= dpdk_sys::RTE_MAX_ETHPORTS {
                return ports;
            }
            ports.push(p);
            next = p.saturating_add(1);
        }
    }

    /// The port id of the ethdev named `name` (e.g. `net_ring0`, or a PCI address).
    pub fn port_by_name(&self, name: &str) -> Result<u16> {
        let c = CString::new(name).map_err(|e| {
            Error::new("rte_eth_dev_get_port_by_name", libc::EINVAL, e.to_string())
        })?;
        let mut port = 0u16;
        // SAFETY: `c` is a valid C string and `port` a valid out-pointer for the call.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut port) };
        if ret < 0 {
            return Err(Error::new(
                "rte_eth_dev_get_port_by_name",
                -ret,
                format!("no ethdev named {name:?}"),
            ));
        }
        Ok(port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_complete_and_ordered() {
        let args = EalArgs {
            app_name: "t".into(),
            main_lcore: 1,
            worker_lcores: vec![1, 2, 3],
            file_prefix: Some("pfx".into()),
            no_huge: true,
            memory_mb: Some(256),
            no_pci: true,
            no_shconf: true,
            vdevs: vec!["net_ring0".into(), "net_null0,size=64".into()],
            allow: vec!["0000:03:00.0".into()],
            log_level: Some("notice".into()),
            extra: vec!["--huge-unlink".into()],
        };
        let expected = [
            "t",
            "-l",
            "1,2,3",
            "--main-lcore",
            "1",
            "--file-prefix",
            "pfx",
            "-m",
            "256",
            "--vdev",
            "net_ring0",
            "--vdev",
            "net_null0,size=64",
            "-a",
            "0000:03:00.0",
            "--log-level",
            "notice",
            "--no-huge",
            "--no-pci",
            "--no-shconf",
            "--huge-unlink",
        ];
        assert_eq!(args.to_argv(), expected);
    }

    #[test]
    fn default_argv_is_minimal() {
        assert_eq!(
            EalArgs::default().to_argv(),
            ["mpgw", "-l", "0", "--main-lcore", "0"]
        );
    }
}
