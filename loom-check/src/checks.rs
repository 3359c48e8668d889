//! A toy decoder driven by the hand-off, checked in every interleaving that
//! loom explores: the helper steps a one-value state per chain and
//! publishes it; the coder turns each state into a byte, publishes it, and
//! at byte `alone_at` takes the state back and goes on alone. The bytes
//! must equal a one-thread run's, and no interleaving may deadlock (a lost
//! wake-up would park a thread forever) or lose a value.

use crate::handoff::{Exchange, Next};
use loom::sync::Arc;

/// The helper's step: the next state of a chain from its state and the
/// chain's last byte.
fn step(q: i8, input: u8) -> i8 {
    q.wrapping_mul(3).wrapping_add(input as i8).wrapping_add(1)
}

/// The coder's byte from the step's state.
fn byte(q: i8, j: usize) -> u8 {
    (q as u8).wrapping_mul(5) ^ j as u8
}

fn one_thread(n: usize, chains: usize) -> Vec<u8> {
    let mut q = [0i8; 2];
    let mut last = [0u8; 2];
    (0..n)
        .map(|j| {
            let k = j % chains;
            q[k] = step(q[k], last[k]);
            last[k] = byte(q[k], j);
            last[k]
        })
        .collect()
}

fn helper(x: &Exchange, n: usize, chains: usize) {
    let _leave = x.leave_guard(false);
    let mut q = [0i8; 2];
    for j in 0..n {
        let k = j % chains;
        let mut input = 0;
        if j >= chains {
            match x.await_byte(j) {
                None => return,
                Some(Next::Byte(b)) => input = b,
                Some(Next::HandBack) => {
                    x.hand_back(j, &[], &q[..chains]);
                    return;
                }
            }
        }
        q[k] = step(q[k], input);
        x.put_q(j, 0, &q[k..k + 1]);
    }
}

fn coder(x: &Exchange, n: usize, chains: usize, alone_at: usize) -> Vec<u8> {
    let _leave = x.leave_guard(true);
    let mut out = Vec::new();
    let mut last = [0u8; 2];
    for j in 0..n {
        let k = j % chains;
        let mut qv = [0i8];
        x.await_q(j, 0, &mut qv)
            .expect("the helper gives every step");
        let b = byte(qv[0], j);
        let alone = j == alone_at && j + chains < n;
        if !alone {
            x.put_byte(j, b);
        }
        out.push(b);
        last[k] = b;
        if alone {
            let mut q = [0i8; 2];
            x.take_back(j, &mut [], &mut q[..chains])
                .expect("the helper hands back");
            for j in j + 1..n {
                let k = j % chains;
                // with two chains the helper's state holds step j + 1
                // already (the other chain's step, which needed byte j - 1)
                if !(chains == 2 && j == alone_at + 1) {
                    q[k] = step(q[k], last[k]);
                }
                last[k] = byte(q[k], j);
                out.push(last[k]);
            }
            return out;
        }
    }
    out
}

fn check(n: usize, chains: usize, alone_at: usize) {
    let want = one_thread(n, chains);
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(move || {
        let x = Arc::new(Exchange::new(chains, 1, 1, 0, chains, None));
        let hx = x.clone();
        let h = loom::thread::spawn(move || helper(&hx, n, chains));
        let got = coder(&x, n, chains, alone_at);
        h.join().unwrap();
        assert_eq!(got, want);
    });
}

#[test]
fn one_chain_paired_to_the_end() {
    check(3, 1, usize::MAX);
}

#[test]
fn one_chain_going_alone() {
    check(3, 1, 0);
    check(4, 1, 1);
}

#[test]
fn two_chains_paired_to_the_end() {
    check(4, 2, usize::MAX);
}

#[test]
fn two_chains_going_alone() {
    // at the first byte, where the helper may still be at any step before
    // the one it must stop at, and later
    check(4, 2, 0);
    check(5, 2, 1);
    check(5, 2, 2);
}
