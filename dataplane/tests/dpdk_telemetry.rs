//! Telemetry commands registered from Rust answer on DPDK's telemetry socket: nested
//! dictionaries render as JSON objects, and a panicking handler answers an error
//! instead of taking the process down.
#![cfg(dpdk)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod dpdk_common;

use dataplane::dpdk::telemetry::{self, Scalar, Value};
use std::ffi::CStr;

/// Sends `cmds` over one SOCK_SEQPACKET connection to `path`; returns the raw answers.
fn ask(path: &str, cmds: &[&str]) -> Vec<String> {
    // SAFETY: plain socket calls on a fresh descriptor with buffers we own.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0);
        assert!(fd >= 0);
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        addr.sun_family = libc::AF_UNIX as u16;
        for (d, s) in addr.sun_path.iter_mut().zip(path.bytes()) {
            *d = s as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as u32;
        assert_eq!(
            libc::connect(fd, (&raw const addr).cast(), len),
            0,
            "{path}"
        );
        let mut buf = vec![0u8; 65536];
        let mut recv = || {
            let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
            assert!(n > 0);
            String::from_utf8_lossy(&buf[..n as usize]).into_owned()
        };
        assert!(recv().contains("\"pid\""), "the greeting first");
        let mut out = Vec::new();
        for cmd in cmds {
            assert_eq!(
                libc::send(fd, cmd.as_ptr().cast(), cmd.len(), 0),
                cmd.len() as isize
            );
            out.push(recv());
        }
        libc::close(fd);
        out
    }
}

#[test]
fn commands_answer_nested_dictionaries_and_survive_a_panic() {
    let _eal = dpdk_common::init("telemetry", &[], &[]).unwrap();
    telemetry::register("/mpgwtest/stats", "test counters", |params| {
        vec![
            ("rx_packets".into(), Value::U64(42)),
            ("params".into(), Value::Str(params.to_owned())),
            (
                "ports".into(),
                Value::Dict(vec![
                    ("down0".into(), Scalar::U64(7)),
                    ("state".into(), Scalar::Str("up".into())),
                ]),
            ),
        ]
    })
    .unwrap();
    telemetry::register("/mpgwtest/panics", "always panics", |_| panic!("boom")).unwrap();
    assert!(telemetry::register("no-slash", "", |_| Vec::new()).is_err());

    // SAFETY: EAL is running; the string is DPDK's static runtime directory.
    let dir = unsafe { CStr::from_ptr(dpdk_sys::rte_eal_get_runtime_dir()) };
    let path = format!("{}/dpdk_telemetry.v2", dir.to_string_lossy());
    let answers = ask(
        &path,
        &["/mpgwtest/stats,x1", "/mpgwtest/panics", "/mpgwtest/stats"],
    );
    assert_eq!(
        answers[0],
        r#"{"/mpgwtest/stats":{"rx_packets":42,"params":"x1","ports":{"down0":7,"state":"up"}}}"#
    );
    assert_eq!(
        answers[1], r#"{"/mpgwtest/panics":null}"#,
        "an error, not a crash"
    );
    assert!(answers[2].contains(r#""params":"""#));
}
