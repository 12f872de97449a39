//! Maps the `dpdk-sys` build result (`DEP_DPDK_AVAILABLE`) to `cfg(dpdk)`, so the
//! DPDK-backed modules compile only where DPDK was found and everything else still
//! builds and tests on a machine without it.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(dpdk)");
    println!("cargo::rerun-if-env-changed=DEP_DPDK_AVAILABLE");
    if std::env::var("DEP_DPDK_AVAILABLE").as_deref() == Ok("1") {
        println!("cargo::rustc-cfg=dpdk");
    }
}
