//! Packet capture by secondary processes (`dpdk-dumpcap`, `dpdk-pdump`) through DPDK's
//! pdump library.
//!
//! [`Pdump::init`] registers the multi-process action that lets a secondary process ask
//! the gateway to mirror a port's RX/TX into a ring and mempool the secondary created in
//! shared memory; DPDK then installs ethdev RX/TX callbacks on the port, which run
//! inside `rte_eth_rx_burst`/`rte_eth_tx_burst` (the worker calls those, never a PMD's
//! burst functions directly, and DPDK is built with `RTE_ETHDEV_RXTX_CALLBACKS`).
//!
//! Requirements on the gateway: the shared configuration (`--no-shconf` unset) and
//! hugepage memory — DPDK 22.11's secondary processes cannot attach to a primary
//! started with `--no-huge` (they fail with "Cannot get hugepage information").

use super::eal::{runtime, Runtime};
use super::error::{Error, Result};
use std::sync::Arc;

/// The pdump server side, registered until dropped (`rte_pdump_uninit`).
pub struct Pdump {
    _rt: Arc<Runtime>,
}

impl Pdump {
    /// Lets secondary processes capture this process's ports (`rte_pdump_init`).
    pub fn init() -> Result<Pdump> {
        let rt = runtime()?;
        // SAFETY: EAL is initialised (`rt`); registers an IPC action, no other effect.
        if unsafe { dpdk_sys::rte_pdump_init() } < 0 {
            return Err(Error::last("rte_pdump_init"));
        }
        Ok(Pdump { _rt: rt })
    }
}

impl Drop for Pdump {
    fn drop(&mut self) {
        // SAFETY: `rte_pdump_init` succeeded and EAL is still running (`_rt`).
        if unsafe { dpdk_sys::rte_pdump_uninit() } < 0 {
            tracing::warn!(error = %Error::last("rte_pdump_uninit"), "pdump");
        }
    }
}

impl std::fmt::Debug for Pdump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pdump")
    }
}
