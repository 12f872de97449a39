//! The `mpgw` binary on bad configurations: a clear error naming the key, a non-zero
//! exit, and nothing started.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use std::path::PathBuf;
use std::process::{Command, Output};

const GOOD: &str = r#"
[dataplane]
workers = [1]

[eal]
no_huge = true
file_prefix = "@PREFIX@"

[admin]
socket = "@DIR@/admin.sock"

[[ports]]
name = "down0"
device = "net_null0"
ipv4 = ["192.0.2.1/24"]

[[ports]]
name = "up0"
device = "net_null1"
ipv4 = ["203.0.113.1/24"]
"#;

struct Case {
    dir: PathBuf,
    prefix: String,
}

impl Case {
    fn new(tag: &str) -> Self {
        let prefix = format!("mpgw-cli-{tag}-{}", std::process::id());
        let dir = std::env::temp_dir().join(&prefix);
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir, prefix }
    }

    fn write(&self, text: &str) -> PathBuf {
        let path = self.dir.join("mpgw.toml");
        let text = text
            .replace("@PREFIX@", &self.prefix)
            .replace("@DIR@", self.dir.to_str().unwrap());
        std::fs::write(&path, text).unwrap();
        path
    }

    fn mpgw(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_mpgw"))
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs `check-config` and `run` on `text`; both must fail naming `key`, and `run`
    /// must not have started anything.
    fn assert_rejected(&self, text: &str, key: &str) {
        let path = self.write(text);
        let path = path.to_str().unwrap();
        for args in [vec!["check-config", path], vec!["run", "--config", path]] {
            let out = self.mpgw(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(stderr.contains(key), "{args:?} should name {key}: {stderr}");
            assert!(
                !stderr.contains("EAL"),
                "{args:?} must not start DPDK: {stderr}"
            );
        }
        assert!(!self.dir.join("admin.sock").exists(), "no admin socket");
        let runtime = PathBuf::from("/var/run/dpdk").join(&self.prefix);
        assert!(!runtime.exists(), "no EAL runtime directory");
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn the_good_configuration_checks_out() {
    let case = Case::new("good");
    let path = case.write(GOOD);
    let out = case.mpgw(&["check-config", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("port down0: vdev net_null0"), "{stdout}");
    assert!(stdout.contains("--vdev net_null0"), "{stdout}");
}

#[test]
fn no_ports_is_rejected() {
    let case = Case::new("noports");
    let text = GOOD.split("[[ports]]").next().unwrap();
    case.assert_rejected(text, "ports: at least one [[ports]] entry");
}

#[test]
fn an_invalid_address_is_rejected() {
    let case = Case::new("badaddr");
    case.assert_rejected(&GOOD.replace("203.0.113.1/24", "203.0.113.256/24"), "ipv4");
}

#[test]
fn an_unknown_key_is_rejected() {
    let case = Case::new("unknown");
    case.assert_rejected(
        &GOOD.replace("no_huge", "no_hugepages"),
        "unknown field `no_hugepages`",
    );
}

#[test]
fn a_duplicate_address_is_rejected() {
    let case = Case::new("dup");
    case.assert_rejected(
        &GOOD.replace("203.0.113.1/24", "192.0.2.1/24"),
        "ports[1].ipv4[0]: 192.0.2.1 is already assigned at ports[0].ipv4[0]",
    );
}

#[test]
fn a_missing_file_is_rejected() {
    let case = Case::new("missing");
    let out = case.mpgw(&["check-config", "/nonexistent/mpgw.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/mpgw.toml"));
}

#[test]
fn the_shipped_configurations_check_out() {
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");
    for file in ["mpgw.example.toml", "lab/mpgw-lab.toml"] {
        let path = format!("{deploy}/{file}");
        let out = Command::new(env!("CARGO_BIN_EXE_mpgw"))
            .args(["check-config", &path])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn gateway_feature_keys_are_shown_and_their_errors_named() {
    let case = Case::new("gwfeat");
    let up = "ipv4 = [\"203.0.113.1/24\"]\n";
    let text = GOOD.replace(
        up,
        &format!("{up}mtu = 1400\nmss_clamp = 1300\nvlan = 100\nflags = [\"backup\"]\n"),
    );
    let path = case.write(&format!("{text}\n[mptcp]\nclose_timeout = 30\n"));
    let out = case.mpgw(&["check-config", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("port up0: vdev net_null1, 203.0.113.1/24, mtu 1400, mss_clamp 1300, vlan 100, flags backup"),
        "{stdout}"
    );
    case.assert_rejected(
        &GOOD.replace(up, &format!("{up}vlan = 4095\n")),
        "ports[1].vlan: 4095 is outside 1..=4094",
    );
    case.assert_rejected(
        &GOOD.replace(up, &format!("{up}mss_clamp = 1500\n")),
        "ports[1].mss_clamp: 1500 is outside 536..=1460",
    );
    case.assert_rejected(
        &format!("{GOOD}\n[mptcp]\nclose_timeout = 100000\n"),
        "mptcp.close_timeout: must be at most 86400 seconds",
    );
}
