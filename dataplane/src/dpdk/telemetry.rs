//! Commands of DPDK's telemetry socket (`dpdk-telemetry.py`, the
//! `dpdk_telemetry.v2` socket in the EAL runtime directory) answered from Rust.
//!
//! [`register`] adds a command with a handler; DPDK calls one C callback for every
//! command from its telemetry thread, which looks the handler up and renders its
//! [`Answer`] into DPDK's data structures. Handlers run on that thread: they must only
//! read data published for them (never a worker's state). A panicking handler is
//! caught at the FFI boundary and answers an error.

use super::error::{Error, Result};
use dpdk_sys::rte_tel_data;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError};

/// A value inside a nested dictionary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scalar {
    /// An unsigned integer.
    U64(u64),
    /// A string (DPDK truncates it at 127 bytes).
    Str(String),
}

/// A top-level value: a scalar, or one level of dictionary (DPDK 22.11 renders no
/// deeper nesting).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// An unsigned integer.
    U64(u64),
    /// A string (DPDK truncates it at 127 bytes).
    Str(String),
    /// A dictionary of scalars.
    Dict(Vec<(String, Scalar)>),
}

/// A command's answer: a dictionary (DPDK keeps at most 256 entries per dictionary;
/// the rest are left out).
pub type Answer = Vec<(String, Value)>;

/// A command handler: gets the command's parameters (the text after the comma, empty
/// if none).
pub type Handler = Arc<dyn Fn(&str) -> Answer + Send + Sync>;

/// Registered commands and their handlers.
static HANDLERS: Mutex<Vec<(String, Handler)>> = Mutex::new(Vec::new());

/// Registers telemetry command `cmd` (`/` followed by letters, digits, `_` and `/`,
/// shorter than 56 bytes), listed by `/help` with `help`. Registering a command again
/// replaces its handler.
pub fn register(
    cmd: &str,
    help: &str,
    handler: impl Fn(&str) -> Answer + Send + Sync + 'static,
) -> Result<()> {
    let valid = cmd.len() < 56
        && cmd.starts_with('/')
        && cmd
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'/');
    if !valid {
        return Err(Error::new(
            "rte_telemetry_register_cmd",
            libc::EINVAL,
            format!("invalid command name {cmd:?}"),
        ));
    }
    let c_cmd = CString::new(cmd).map_err(|e| inval(e.to_string()))?;
    let c_help = CString::new(help).map_err(|e| inval(e.to_string()))?;
    {
        let mut handlers = HANDLERS.lock().unwrap_or_else(PoisonError::into_inner);
        handlers.retain(|(c, _)| c != cmd);
        handlers.push((cmd.to_owned(), Arc::new(handler)));
    }
    // SAFETY: both strings are valid C strings (DPDK copies them); `callback` has the
    // `telemetry_cb` signature and never unwinds.
    let ret = unsafe {
        dpdk_sys::rte_telemetry_register_cmd(c_cmd.as_ptr(), Some(callback), c_help.as_ptr())
    };
    Error::check("rte_telemetry_register_cmd", ret).map(|_| ())
}

fn inval(msg: String) -> Error {
    Error::new("rte_telemetry_register_cmd", libc::EINVAL, msg)
}

/// The handler of `cmd`, cloned out so the lock is not held while it runs.
fn handler(cmd: &str) -> Option<Handler> {
    HANDLERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .find(|(c, _)| c == cmd)
        .map(|(_, h)| Arc::clone(h))
}

/// DPDK's callback for every registered command.
unsafe extern "C" fn callback(
    cmd: *const c_char,
    params: *const c_char,
    info: *mut rte_tel_data,
) -> c_int {
    let answer = || {
        if cmd.is_null() || info.is_null() {
            return -libc::EINVAL;
        }
        // SAFETY: DPDK passes NUL-terminated strings that live during the call.
        let cmd = unsafe { CStr::from_ptr(cmd) }.to_string_lossy();
        let params = if params.is_null() {
            String::new()
        } else {
            // SAFETY: as for `cmd`.
            unsafe { CStr::from_ptr(params) }
                .to_string_lossy()
                .into_owned()
        };
        let Some(h) = handler(&cmd) else {
            return -libc::EINVAL;
        };
        // SAFETY: `info` is the fresh data object DPDK hands to this call.
        unsafe { fill(info, &h(&params)) }
    };
    catch_unwind(AssertUnwindSafe(answer)).unwrap_or(-libc::EIO)
}

/// Renders `answer` into `d` as a dictionary; 0, or a negative errno.
///
/// # Safety
/// `d` is a valid, unstarted `rte_tel_data`.
unsafe fn fill(d: *mut rte_tel_data, answer: &Answer) -> c_int {
    // SAFETY: `d` is valid (caller).
    let ret = unsafe { dpdk_sys::rte_tel_data_start_dict(d) };
    if ret < 0 {
        return ret;
    }
    for (name, value) in answer {
        let Ok(name) = CString::new(name.as_str()) else {
            continue;
        };
        // SAFETY: `d` is a started dictionary, `name` a valid C string DPDK copies.
        let ret = unsafe {
            match value {
                Value::U64(v) => dpdk_sys::rte_tel_data_add_dict_u64(d, name.as_ptr(), *v),
                Value::Str(s) => add_string(d, &name, s),
                Value::Dict(entries) => add_dict(d, &name, entries),
            }
        };
        // A full dictionary takes nothing more; a too long string is kept truncated.
        if ret == -libc::ENOSPC {
            break;
        }
    }
    0
}

/// # Safety
/// `d` is a started dictionary.
unsafe fn add_string(d: *mut rte_tel_data, name: &CStr, s: &str) -> c_int {
    let Ok(s) = CString::new(s) else {
        return -libc::EINVAL;
    };
    // SAFETY: valid dictionary and C strings (copied by DPDK).
    unsafe { dpdk_sys::rte_tel_data_add_dict_string(d, name.as_ptr(), s.as_ptr()) }
}

/// # Safety
/// `d` is a started dictionary.
unsafe fn add_dict(d: *mut rte_tel_data, name: &CStr, entries: &[(String, Scalar)]) -> c_int {
    // SAFETY: allocates a fresh data object (NULL when out of memory).
    let inner = unsafe { dpdk_sys::rte_tel_data_alloc() };
    if inner.is_null() {
        return -libc::ENOMEM;
    }
    // SAFETY: `inner` is fresh and valid; after a successful `add_dict_container` with
    // `keep = 0` DPDK owns and frees it, otherwise it is freed here.
    unsafe {
        dpdk_sys::rte_tel_data_start_dict(inner);
        for (k, v) in entries {
            let Ok(k) = CString::new(k.as_str()) else {
                continue;
            };
            let ret = match v {
                Scalar::U64(v) => dpdk_sys::rte_tel_data_add_dict_u64(inner, k.as_ptr(), *v),
                Scalar::Str(s) => add_string(inner, &k, s),
            };
            if ret == -libc::ENOSPC {
                break;
            }
        }
        let ret = dpdk_sys::rte_tel_data_add_dict_container(d, name.as_ptr(), inner, 0);
        if ret < 0 {
            dpdk_sys::rte_tel_data_free(inner);
        }
        ret
    }
}
