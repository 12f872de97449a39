//! EAL start-up and shutdown.

use super::error::{Error, Result};
use crate::eal_args::EalArgs;
use std::ffi::{c_char, c_int, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

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
        let c = CString::new(name)
            .map_err(|e| Error::new("rte_eth_dev_get_port_by_name", libc::EINVAL, e.to_string()))?;
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
