//! Where a blocking call may block: the one check every blocking entry
//! point (the `*_blocking` methods, `OwnedChild::wait_blocking`, the compat
//! functions) goes through, so none of them panics inside async code.
//!
//! Tokio's own blocking calls (`blocking_send`, `blocking_recv`) panic on
//! a thread that is running a runtime. Here:
//!
//! - outside any runtime (a plain thread), the call just blocks;
//! - inside a `multi_thread` runtime, it runs in
//!   `tokio::task::block_in_place`, which hands the worker's other tasks
//!   to another thread first, so even a monitor living on that same runtime
//!   keeps running and answers (on a `spawn_blocking` thread it just runs);
//! - inside a `current_thread` runtime it fails with
//!   [`Error::InsideRuntime`], naming the async call to use instead:
//!   blocking there would stall every task of the runtime, possibly the
//!   monitor itself, forever. Tokio offers no way to tell that runtime's
//!   own thread from its `spawn_blocking` threads (both see the runtime's
//!   handle), so the latter are refused too; a `std::thread` is not.

use tokio::runtime::{Handle, RuntimeFlavor};

use crate::Error;

/// Runs `work`, which blocks, where that is safe; see the module docs.
/// `call` names the blocking call and `instead` its async counterpart,
/// for the error.
pub(crate) fn block<T>(
    call: &'static str,
    instead: &'static str,
    work: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    match Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Err(_) => work(),
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        // `current_thread`, and any flavor added later: refused rather
        // than risking tokio's panic.
        Ok(_) => Err(Error::InsideRuntime { call, instead }),
    }
}
