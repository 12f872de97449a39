//! The error type of the DPDK layer.

use std::borrow::Cow;
use std::ffi::{c_int, CStr};

/// A failed DPDK operation: what was attempted, the errno, and DPDK's description of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op}: {msg} (errno {errno})")]
pub struct Error {
    op: Cow<'static, str>,
    errno: i32,
    msg: String,
}

/// Result of a DPDK-layer operation.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error with an explicit message (for failures detected on the Rust side).
    pub fn new(op: impl Into<Cow<'static, str>>, errno: i32, msg: impl Into<String>) -> Self {
        Self {
            op: op.into(),
            errno,
            msg: msg.into(),
        }
    }

    /// An error for `errno` (positive), described by `rte_strerror`.
    pub fn from_errno(op: impl Into<Cow<'static, str>>, errno: i32) -> Self {
        // SAFETY: `rte_strerror` accepts any value and returns a NUL-terminated string in
        // a thread-local buffer, which is copied before anything else runs on this thread.
        let msg = unsafe {
            let s = dpdk_sys::rte_strerror(errno);
            if s.is_null() {
                String::new()
            } else {
                CStr::from_ptr(s).to_string_lossy().into_owned()
            }
        };
        Self::new(op, errno, msg)
    }

    /// An error for the calling thread's current `rte_errno`.
    pub(crate) fn last(op: impl Into<Cow<'static, str>>) -> Self {
        // SAFETY: reads a thread-local integer; no preconditions.
        let errno = unsafe { dpdk_sys::dpdk_sys_rte_errno() };
        Self::from_errno(op, errno)
    }

    /// Maps DPDK's "negative errno on failure" convention to a `Result`.
    pub(crate) fn check(op: &'static str, ret: c_int) -> Result<c_int> {
        if ret < 0 {
            Err(Self::from_errno(op, -ret))
        } else {
            Ok(ret)
        }
    }

    /// The operation that failed, e.g. `"rte_eth_dev_configure"`.
    pub fn op(&self) -> &str {
        &self.op
    }

    /// The errno (a libc `E*` value or one of DPDK's `E_RTE_*`).
    pub fn errno(&self) -> i32 {
        self.errno
    }

    /// The description: `rte_strerror(errno)`, or the explicit message.
    pub fn message(&self) -> &str {
        &self.msg
    }
}
