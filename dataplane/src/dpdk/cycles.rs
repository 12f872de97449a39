//! The time-stamp counter, DPDK's clock for the packet path.

/// Current TSC value (`rte_rdtsc`).
#[inline(always)]
pub fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: RDTSC is available on every x86_64 CPU and has no memory effects.
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: reads the cycle counter; no preconditions.
    unsafe {
        dpdk_sys::rte_rdtsc()
    }
}

/// TSC ticks per second, as measured by EAL (`rte_get_tsc_hz`); 0 before `Eal::init`.
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a global set during EAL init; no preconditions.
    unsafe { dpdk_sys::rte_get_tsc_hz() }
}
