//! The synchronisation that `lend` is written against: std's types and
//! rayon's pool here. `loom-check/` gives the same names with loom's, so
//! that the model checker runs the very source of the protocol.

pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

/// How long a dry lane's thread stays lent while no chunk takes it before
/// it looks for pool work again.
pub(crate) const LOOK_AGAIN: std::time::Duration = std::time::Duration::from_millis(20);

/// Runs one job the pool has waiting, if any; whether it ran one.
pub(crate) fn run_pool_work() -> bool {
    matches!(rayon::yield_now(), Some(rayon::Yield::Executed))
}
