//! The lending of dry lanes' threads, in every interleaving loom explores:
//! lanes that enter and leave in any order, a decoding lane that asks for
//! helpers and gives them back. Every lane must end (a lost wake-up would
//! leave one asleep, which loom reports as a deadlock) and every loan must
//! come back.

use crate::lend::Lender;
use loom::sync::Arc;

/// `dry` lanes with no chunk, one lane that asks for a helper `asks` times
/// (giving back each it gets), `free` threads to lend from the start.
fn check(dry: usize, asks: usize, free: usize) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(move || {
        let lender = Arc::new(Lender::new(true, free));
        let lanes: Vec<_> = (0..dry)
            .map(|_| {
                let l = lender.clone();
                loom::thread::spawn(move || l.enter().leave())
            })
            .collect();
        let lane = lender.enter();
        for _ in 0..asks {
            if lender.take() {
                lender.give();
            }
        }
        lane.leave();
        for t in lanes {
            t.join().unwrap();
        }
        assert_eq!(lender.free(), free, "every loan came back");
    });
}

#[test]
fn a_dry_lane_lends_until_the_other_ends() {
    check(1, 0, 0);
    check(1, 2, 0);
}

#[test]
fn lanes_lend_beside_threads_free_from_the_start() {
    check(1, 2, 1);
}

#[test]
fn two_dry_lanes() {
    check(2, 1, 0);
}
