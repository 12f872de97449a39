//! Link-state-change (LSC) interrupts of a port: a Rust closure DPDK calls on its
//! interrupt thread whenever the PMD reports that the link changed.
//!
//! [`super::EthDev::watch_link`] registers one `RTE_ETH_EVENT_INTR_LSC` callback per
//! [`LinkWatch`]; dropping the watch unregisters it (waiting while DPDK is running it),
//! so the closure never runs after the watch is gone. The watch keeps its port open.

use super::error::{Error, Result};
use super::ethdev::DevInner;
use dpdk_sys as sys;
use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How long dropping a watch waits for a running callback before leaking its state.
const UNREGISTER_WAIT: Duration = Duration::from_secs(1);

/// What the callback reaches through its argument.
struct Shared {
    /// Callbacks run so far.
    events: AtomicU64,
    /// When the last one ran, ns since the Unix epoch (0: never).
    last_ns: AtomicU64,
    /// The owner's reaction.
    on_change: Box<dyn Fn() + Send + Sync>,
}

/// A registered LSC callback; unregistered when dropped.
pub struct LinkWatch {
    dev: Arc<DevInner>,
    shared: Arc<Shared>,
}

impl LinkWatch {
    /// Registers `on_change` for the LSC events of the port of `dev`.
    pub(super) fn register(
        dev: Arc<DevInner>,
        on_change: Box<dyn Fn() + Send + Sync>,
    ) -> Result<LinkWatch> {
        let shared = Arc::new(Shared {
            events: AtomicU64::new(0),
            last_ns: AtomicU64::new(0),
            on_change,
        });
        // SAFETY: valid port; `on_lsc` has the `rte_eth_dev_cb_fn` signature and never
        // unwinds; its argument stays valid until the callback is unregistered (`Drop`
        // does that before releasing `shared`).
        let ret = unsafe {
            sys::rte_eth_dev_callback_register(
                dev.port_id,
                sys::rte_eth_event_type::RTE_ETH_EVENT_INTR_LSC,
                Some(on_lsc),
                Arc::as_ptr(&shared).cast_mut().cast(),
            )
        };
        Error::check("rte_eth_dev_callback_register", ret)?;
        Ok(LinkWatch { dev, shared })
    }

    /// The port id.
    pub fn port_id(&self) -> u16 {
        self.dev.port_id
    }

    /// LSC events delivered so far.
    pub fn events(&self) -> u64 {
        self.shared.events.load(Ordering::Relaxed)
    }

    /// When the last LSC event was delivered (wall clock), if any.
    pub fn last_event(&self) -> Option<SystemTime> {
        match self.shared.last_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => SystemTime::UNIX_EPOCH.checked_add(Duration::from_nanos(ns)),
        }
    }
}

impl Drop for LinkWatch {
    fn drop(&mut self) {
        let deadline = Instant::now() + UNREGISTER_WAIT;
        loop {
            // SAFETY: the same port, event, function and argument as registered.
            let ret = unsafe {
                sys::rte_eth_dev_callback_unregister(
                    self.dev.port_id,
                    sys::rte_eth_event_type::RTE_ETH_EVENT_INTR_LSC,
                    Some(on_lsc),
                    Arc::as_ptr(&self.shared).cast_mut().cast(),
                )
            };
            // EAGAIN: DPDK is running the callback right now.
            if ret != -libc::EAGAIN {
                if ret < 0 {
                    tracing::warn!(port = self.dev.port_id,
                        error = %Error::from_errno("rte_eth_dev_callback_unregister", -ret),
                        "LSC callback not unregistered");
                }
                return;
            }
            if Instant::now() >= deadline {
                // Still running: its argument must outlive it.
                std::mem::forget(Arc::clone(&self.shared));
                tracing::warn!(
                    port = self.dev.port_id,
                    "LSC callback still running: its state is leaked"
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl std::fmt::Debug for LinkWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkWatch")
            .field("port_id", &self.dev.port_id)
            .field("events", &self.events())
            .finish()
    }
}

/// DPDK's LSC callback: counts the event and runs the owner's closure.
unsafe extern "C" fn on_lsc(
    _port_id: u16,
    _event: sys::rte_eth_event_type,
    arg: *mut c_void,
    _ret_param: *mut c_void,
) -> c_int {
    let run = || {
        // SAFETY: `arg` is the `Shared` of a registered watch, alive until unregistered.
        let Some(shared) = (unsafe { arg.cast_const().cast::<Shared>().as_ref() }) else {
            return;
        };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        shared.last_ns.store(now, Ordering::Relaxed);
        shared.events.fetch_add(1, Ordering::Relaxed);
        (shared.on_change)();
    };
    let _ = catch_unwind(AssertUnwindSafe(run));
    0
}
