//! Maps the `dpdk-sys` build result to `cfg(dpdk)`: without DPDK the binary still
//! builds (configuration checks work) but `mpgw run` reports that DPDK is missing.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(dpdk)");
    if std::env::var("DEP_DPDK_AVAILABLE").as_deref() == Ok("1") {
        println!("cargo::rustc-cfg=dpdk");
    }
}
