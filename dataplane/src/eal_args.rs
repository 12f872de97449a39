//! Typed EAL command-line arguments.
//!
//! Pure Rust with no DPDK dependency, so configuration code can build and print them
//! also where DPDK is absent.

/// EAL command-line arguments, typed.
///
/// [`EalArgs::to_argv`] renders them in a fixed order with `extra` last, so anything not
/// covered here can still be passed through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalArgs {
    /// `argv[0]`, the program name EAL logs under.
    pub app_name: String,
    /// The main lcore (`--main-lcore`); it runs the caller of `Eal::init`.
    pub main_lcore: u32,
    /// Worker lcores; together with the main lcore they make up `-l`.
    pub worker_lcores: Vec<u32>,
    /// Lcores that run on another CPU than the one of their number, `(lcore, cpu)`:
    /// rendered as `--lcores` (DPDK's `lcore@cpu` form) instead of `-l`. Several
    /// lcores may share a CPU (more workers than CPUs, for tests).
    pub lcore_cpus: Vec<(u32, u32)>,
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
            lcore_cpus: Vec::new(),
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
        let all: Vec<u32> = std::iter::once(self.main_lcore)
            .chain(workers.into_iter().filter(|&l| l != self.main_lcore))
            .collect();
        let (flag, lcores) = if self.lcore_cpus.is_empty() {
            let list: Vec<String> = all.iter().map(u32::to_string).collect();
            ("-l", list.join(","))
        } else {
            let cpu = |l: u32| {
                self.lcore_cpus
                    .iter()
                    .find(|&&(lc, _)| lc == l)
                    .map_or(l, |&(_, c)| c)
            };
            let list: Vec<String> = all.iter().map(|&l| format!("{l}@{}", cpu(l))).collect();
            ("--lcores", list.join(","))
        };
        let mut argv = vec![
            self.app_name.clone(),
            flag.to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcores_mapped_to_cpus_use_the_lcores_form() {
        let args = EalArgs {
            main_lcore: 0,
            worker_lcores: vec![2, 1],
            lcore_cpus: vec![(2, 1)],
            ..EalArgs::default()
        };
        let argv = args.to_argv();
        assert_eq!(
            argv[1..3],
            ["--lcores".to_owned(), "0@0,1@1,2@1".to_owned()]
        );
    }

    #[test]
    fn argv_is_complete_and_ordered() {
        let args = EalArgs {
            app_name: "t".into(),
            main_lcore: 1,
            worker_lcores: vec![1, 2, 3],
            lcore_cpus: Vec::new(),
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
