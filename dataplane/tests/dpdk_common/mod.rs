//! EAL set-up shared by the `dpdk_*` integration tests.
//!
//! EAL initialises once per process, so every test file is its own binary with a single
//! EAL-using `#[test]`; each run gets a unique `--file-prefix` so concurrent test
//! processes (`cargo nextest`) do not collide, and `--no-huge --no-pci --no-shconf` so
//! no hugepages, devices or root are needed.

use dataplane::dpdk::{Eal, EalArgs, Result};

/// Starts EAL for test `name` on lcore 0 plus `workers`, with the given `--vdev`s.
pub fn init(name: &str, workers: &[u32], vdevs: &[&str]) -> Result<Eal> {
    Eal::init(&EalArgs {
        app_name: name.to_owned(),
        main_lcore: 0,
        worker_lcores: workers.to_vec(),
        file_prefix: Some(format!("{name}-{}", std::process::id())),
        no_huge: true,
        memory_mb: Some(256),
        no_pci: true,
        no_shconf: true,
        vdevs: vdevs.iter().map(|v| (*v).to_owned()).collect(),
        ..EalArgs::default()
    })
}
