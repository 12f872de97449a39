//! Running closures on EAL worker lcores, and registering non-EAL threads.

use super::eal::{runtime, Runtime};
use super::error::{Error, Result};
use std::any::Any;
use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};

/// What the trampoline runs: the closure, and where to leave a panic message.
struct Job {
    f: Box<dyn FnOnce() + Send>,
    panicked: Arc<OnceLock<String>>,
}

/// The `lcore_function_t` EAL calls on the worker: runs the boxed [`Job`] and turns a
/// panic into a stored message plus a non-zero return, so it never unwinds into C.
unsafe extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Box<Job>` leaked by `launch` for exactly this one call.
    let job = unsafe { Box::from_raw(arg.cast::<Job>()) };
    let Job { f, panicked } = *job;
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => 0,
        Err(payload) => {
            let _ = panicked.set(panic_message(payload.as_ref()));
            -1
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Runs `f` on worker lcore `lcore_id` (`rte_eal_remote_launch`). Fails if the lcore is
/// not an enabled worker or is still busy with an earlier launch, or (`EPERM`) when called
/// from any thread but the main lcore (the one that ran [`super::Eal::init`]).
pub fn launch(lcore_id: u32, f: impl FnOnce() + Send + 'static) -> Result<LcoreJoin> {
    const OP: &str = "rte_eal_remote_launch";
    let rt = runtime()?;
    // SAFETY: EAL runs; both calls only read the lcore table.
    let (enabled, main) = unsafe {
        (
            dpdk_sys::rte_lcore_is_enabled(lcore_id) != 0,
            dpdk_sys::rte_get_main_lcore(),
        )
    };
    // `rte_eal_remote_launch` is main-lcore only: two threads launching on one worker
    // race on its unsynchronised `f`/`arg` slots (a leaked job, a hung worker).
    if current_lcore() != Some(main) {
        return Err(Error::new(
            OP,
            libc::EPERM,
            "lcore::launch must be called from the main lcore",
        ));
    }
    if !enabled || lcore_id == main {
        return Err(Error::new(
            OP,
            libc::EINVAL,
            format!("lcore {lcore_id} is not an enabled worker lcore"),
        ));
    }
    let panicked = Arc::new(OnceLock::new());
    let job = Box::into_raw(Box::new(Job {
        f: Box::new(f),
        panicked: Arc::clone(&panicked),
    }));
    // SAFETY: `trampoline` matches `lcore_function_t` and takes ownership of `job`, which
    // stays valid until it runs.
    let ret = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline), job.cast(), lcore_id) };
    if ret < 0 {
        // SAFETY: the launch failed, so the trampoline never runs: the job is still ours.
        drop(unsafe { Box::from_raw(job) });
        return Err(Error::from_errno(OP, -ret));
    }
    Ok(LcoreJoin {
        lcore_id,
        panicked,
        joined: false,
        _rt: rt,
    })
}

/// A closure running on a worker lcore. Dropping it without [`LcoreJoin::join`] waits
/// for the closure too.
#[must_use = "dropping an LcoreJoin blocks until the worker returns"]
pub struct LcoreJoin {
    lcore_id: u32,
    panicked: Arc<OnceLock<String>>,
    joined: bool,
    _rt: Arc<Runtime>,
}

impl LcoreJoin {
    /// The lcore the closure runs on.
    pub fn lcore_id(&self) -> u32 {
        self.lcore_id
    }

    /// Waits for the closure to return (`rte_eal_wait_lcore`); an error with
    /// `ECANCELED` and the panic message if it panicked.
    pub fn join(mut self) -> Result<()> {
        self.wait();
        match self.panicked.get() {
            None => Ok(()),
            Some(msg) => Err(Error::new(
                "lcore worker",
                libc::ECANCELED,
                format!("worker on lcore {} panicked: {msg}", self.lcore_id),
            )),
        }
    }

    fn wait(&mut self) {
        if !self.joined {
            // SAFETY: EAL runs (`_rt`); waits for the worker launched by `launch`.
            unsafe { dpdk_sys::rte_eal_wait_lcore(self.lcore_id) };
            self.joined = true;
        }
    }
}

impl Drop for LcoreJoin {
    fn drop(&mut self) {
        self.wait();
    }
}

impl std::fmt::Debug for LcoreJoin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LcoreJoin")
            .field("lcore_id", &self.lcore_id)
            .field("joined", &self.joined)
            .finish()
    }
}

/// Registers the calling non-EAL thread with EAL (`rte_thread_register`), giving it an
/// lcore id and a mempool cache. Needed before such a thread allocates or frees mbufs.
pub fn register_thread() -> Result<()> {
    let _rt = runtime()?;
    // SAFETY: EAL runs; registers the calling thread only.
    let ret = unsafe { dpdk_sys::rte_thread_register() };
    if ret < 0 {
        return Err(Error::last("rte_thread_register"));
    }
    Ok(())
}

/// The calling thread's lcore id, `None` for an unregistered non-EAL thread.
pub fn current_lcore() -> Option<u32> {
    // SAFETY: reads a thread-local variable; no preconditions.
    let id = unsafe { dpdk_sys::rte_lcore_id() };
    (id != dpdk_sys::LCORE_ID_ANY).then_some(id)
}
