//! The threads of a group's lanes that have no chunk left, lent to the
//! chunks still decoding as their model helpers: the protocol alone, with
//! no arithmetic, written against `sync` (std's types and rayon here) so
//! that `loom-check/` model-checks this very file against loom's.

use super::sync::{self, Condvar, Mutex, MutexGuard};

/// The processors of one group's lanes that have no chunk left, lent to
/// the chunks still decoding as their model helpers (`pair`).
///
/// A lane whose queue runs dry first runs any other work the pool has
/// (`rayon::yield_now`); with none, it counts its thread as free and
/// sleeps until every lane has ended, taking the thread back now and then
/// ([`sync::LOOK_AGAIN`]) to look for pool work again while no chunk uses
/// it. A chunk decoding alone asks for a free thread every 64 KiB and
/// holds it for one paired run. So at most as many threads run as the
/// pool has (lanes, plus helpers in the place of sleeping lanes), and the
/// end of a group, where one lane decodes its last chunk while the others
/// have nothing, goes on two threads.
///
/// Why no lane waits forever: every change of `free` or `running` is made
/// under the one mutex, and each that can end a wait (`running` reaching
/// 0, `free` growing) notifies every waiter; a waiter checks its condition
/// under the lock before it sleeps, so no wake-up is lost. A sleeping lane
/// waits only for lanes that decode (which wait for no pool thread, only
/// for the budget's room that other decoders give back) or for a helper's
/// run to end; a lane that unwinds stops counting as decoding ([`Lane`]).
/// The timed wait is never needed for progress: `loom-check/` models it as
/// a wait without a timeout.
///
/// On 2 threads of the development VM, without lending, the lane with
/// urls.10K of a 9.9 MB tree (5.5 s alone) decoded its last 3.6 s with the
/// other thread idle; lent that thread, urls.10K took 4.6-4.8 s and the
/// tree extracted in 21.4-21.8 s against 23.1-24.3 s (one thread:
/// 39.4-43.1 s).
pub(crate) struct Lender {
    state: Mutex<Loans>,
    wake: Condvar,
    /// Whether dry lanes lend their threads (or return them to the pool).
    lends: bool,
}

struct Loans {
    /// Threads free for a helper.
    free: usize,
    /// Lanes decoding a chunk.
    running: usize,
}

impl Lender {
    /// A lender with `free` threads to lend from the start, whose dry
    /// lanes lend theirs where `lends`.
    pub(crate) fn new(lends: bool, free: usize) -> Lender {
        Lender {
            state: Mutex::new(Loans { free, running: 0 }),
            wake: Condvar::new(),
            lends,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Loans> {
        // (no code panics while holding the lock)
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A lane starts taking chunks; [`Lane::leave`] when it has none left.
    pub(crate) fn enter(&self) -> Lane<'_> {
        self.lock().running += 1;
        Lane(self)
    }

    /// A thread for a helper, if one is free now.
    pub(crate) fn take(&self) -> bool {
        let mut s = self.lock();
        let free = s.free > 0;
        s.free -= free as usize;
        free
    }

    /// The thread taken by [`Lender::take`], back.
    pub(crate) fn give(&self) {
        self.lock().free += 1;
        self.wake.notify_all();
    }

    /// A lane that stops decoding: the others no longer wait for it.
    fn stop(&self) -> MutexGuard<'_, Loans> {
        let mut s = self.lock();
        s.running -= 1;
        if s.running == 0 {
            self.wake.notify_all();
        }
        s
    }

    /// A dry lane's thread, lent until no lane decodes.
    fn lend(&self) {
        let mut s = self.stop();
        loop {
            if s.running == 0 {
                return;
            }
            drop(s);
            while sync::run_pool_work() {}
            s = self.lock();
            if s.running == 0 {
                return;
            }
            s.free += 1;
            // a wait that ends with the loan unused takes it back to look
            // for pool work again
            s = self
                .wake
                .wait_timeout(s, sync::LOOK_AGAIN)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            while s.running > 0 && s.free == 0 {
                // a helper runs in this thread's place
                s = self.wake.wait(s).unwrap_or_else(|e| e.into_inner());
            }
            s.free -= 1;
        }
    }

    /// Threads free for a helper now (for checks).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn free(&self) -> usize {
        self.lock().free
    }
}

/// A lane of a [`Lender`]'s group; one that unwinds stops decoding, so
/// that no other lane waits for it.
pub(crate) struct Lane<'a>(&'a Lender);

impl Drop for Lane<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            drop(self.0.stop());
        }
    }
}

impl Lane<'_> {
    /// The lane has no chunk left: lend its thread until no lane decodes
    /// (if its lender lends).
    pub(crate) fn leave(self) {
        let lender = self.0;
        std::mem::forget(self);
        match lender.lends {
            true => lender.lend(),
            false => drop(lender.stop()),
        }
    }
}
