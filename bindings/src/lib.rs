//! Raw FFI bindings to DPDK 22.11, generated at build time by bindgen from
//! `csrc/wrapper.h`.
//!
//! DPDK's `static inline` functions are reachable through generated C wrappers with a
//! `_w` suffix (`rte_eth_rx_burst_w`, `rte_pktmbuf_free_w`, ...); the per-packet mbuf
//! field accessors are in [`inline`], in pure Rust so they inline into the caller.
//!
//! Without DPDK at build time (pkg-config finds no `libdpdk`) the crate is an empty
//! stub, built with `cfg(dpdk_sys_stub)`; dependents see `DEP_DPDK_AVAILABLE=0` in their
//! build scripts (1 with DPDK) and can map it to a cfg of their own.

/// The generated bindings.
#[cfg(not(dpdk_sys_stub))]
#[allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    missing_docs,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::pedantic,
    rustdoc::all
)]
mod ffi {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

#[cfg(not(dpdk_sys_stub))]
pub use ffi::*;

#[cfg(not(dpdk_sys_stub))]
include!(concat!(env!("OUT_DIR"), "/meta.rs"));

/// The DPDK version found at build time (`pkg-config --modversion libdpdk`).
#[cfg(not(dpdk_sys_stub))]
pub const DPDK_VERSION: &str = env!("DPDK_VERSION");

#[cfg(not(dpdk_sys_stub))]
pub mod inline;
