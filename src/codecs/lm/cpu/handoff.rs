//! The hand-off protocol between the two threads that decode one chunk
//! (`pair`): what each thread publishes, what it waits for, and how the
//! coder takes the model's state back to go on alone.
//!
//! This module holds no arithmetic, only the exchange, so that it can be
//! model-checked: `loom-check/` builds this same file against loom's
//! atomics and threads (through `sync`) and explores every interleaving of
//! a toy decoder driven by it.
//!
//! # The protocol
//!
//! Steps are numbered by the byte whose frequencies they give (`j`, in
//! coding order); with two chains (two streams) step `j` belongs to chain
//! `j % chains` and needs byte `j - chains`, the last byte of its chain.
//!
//! - helper -> coder, `q[k][l]`: layer `l`'s new state of step `j` (chain
//!   `k`), stamped `j + 1`;
//! - coder -> helper, `byte[k]`: byte `j` of chain `k`, stamped `j + 1`;
//! - coder -> helper, `solo`: `s + 1` where `s` is the step at which the
//!   helper must stop and hand its state back (0: none);
//! - helper -> coder, `state`: the helper's state, stamped `s + 1`;
//! - `stop`: a thread left (returned or panicked); the other never waits for
//!   it in vain.
//!
//! Why it is correct, in a few lines:
//!
//! 1. Each mailbox has one writer and one reader, and the writer cannot
//!    overwrite a value before the reader took it: the helper writes `q` of
//!    step `j + chains` (same chain, same mailbox) only after reading byte
//!    `j`, which the coder publishes only after reading `q` of step `j`;
//!    the coder writes byte `j + chains` only after reading `q` of step
//!    `j + chains`, which needs byte `j` read. A stamp is stored (Release)
//!    after its words and checked (Acquire) before they are read.
//! 2. Going alone at byte `j`, the coder publishes bytes `0..j` but not
//!    `j`, and sets `solo = j + chains + 1`. The helper at step `t` waits
//!    for byte `t - chains` *or* `solo == t + 1`; exactly one of the two can
//!    hold: for `t < j + chains` the byte is `< j`, so it was (or will be)
//!    published and `solo` names another step; for `t = j + chains` the
//!    byte is `j`, which is never published. The helper cannot pass step
//!    `j + chains` (it needs byte `j`), so it hands back at exactly that
//!    step, having done every step before it: the state the coder needs.
//!    (Checking `solo` alone, without the step, would let a helper that is
//!    still behind at step `j + 1` of two chains hand back one step early:
//!    the coder then waited for a state that never came.)
//! 3. Waiting never depends on both threads running: a waiter spins for at
//!    most [`sync::STALL`] and then parks on a [`Bell`]; every publication
//!    rings the other side's bell. A ring and a waiter's decision to park
//!    are ordered by one atomic word (read-modify-write operations on one
//!    location are totally ordered), so a wake-up is never lost; the park
//!    also has a timeout as a second line.
//! 4. A thread that leaves, normally or by unwinding, sets `stop` and rings
//!    the other's bell ([`Leave`]); a waiter that sees `stop` without its
//!    value returns `None`, which the caller reports as an internal error.

use super::sync::{self, AtomicBool, AtomicU64, Mutex, Ordering, Thread};

/// A doorbell one thread parks on and the other rings after publishing.
///
/// `word` counts rings (in steps of 2) and holds [`SLEEPING`] while its
/// waiter is about to park or parked.
pub(crate) struct Bell {
    word: AtomicU64,
    sleeper: Mutex<Option<Thread>>,
}

const SLEEPING: u64 = 1;

impl Bell {
    pub(crate) fn new() -> Bell {
        Bell {
            word: AtomicU64::new(0),
            sleeper: Mutex::new(None),
        }
    }

    /// Wakes the waiter if it parked (or is about to). Call after the
    /// values it waits for are stored.
    pub(crate) fn ring(&self) {
        if self.word.fetch_add(2, Ordering::AcqRel) & SLEEPING != 0 {
            let sleeper = self.sleeper.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(t) = sleeper.as_ref() {
                t.unpark();
            }
        }
    }

    /// Parks this thread until the bell rings, unless `ready()` holds or
    /// it rang since the caller's last look. May return early; the caller
    /// looks again.
    fn sleep(&self, ready: &dyn Fn() -> bool) {
        let seen = self.word.load(Ordering::Acquire);
        if ready() {
            return;
        }
        {
            let mut sleeper = self.sleeper.lock().unwrap_or_else(|e| e.into_inner());
            if sleeper.is_none() {
                *sleeper = Some(sync::current());
            }
        }
        // Fails if a ring came after `seen` (its values are then visible to
        // the caller's next look); once it succeeds, any later ring sees
        // SLEEPING and unparks.
        if self
            .word
            .compare_exchange(seen, seen | SLEEPING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            sync::park();
        }
        self.word.fetch_and(!SLEEPING, Ordering::AcqRel);
    }
}

/// One-writer, one-reader buffer of words, valid for the stamp in `seq`.
pub(crate) struct Mail {
    seq: AtomicU64,
    words: Vec<AtomicU64>,
}

impl Mail {
    pub(crate) fn new(words: usize) -> Mail {
        Mail {
            seq: AtomicU64::new(0),
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Words for `a` i32 values and `b` i8 values.
    pub(crate) fn words_for(a: usize, b: usize) -> usize {
        a.div_ceil(2) + b.div_ceil(8)
    }

    fn is(&self, seq: u64) -> bool {
        self.seq.load(Ordering::Acquire) == seq
    }

    /// Stores `a` (two values a word) then `b` (eight a word), then `seq`.
    fn put(&self, seq: u64, a: &[i32], b: &[i8]) {
        let (wa, wb) = self.words.split_at(a.len().div_ceil(2));
        for (w, c) in wa.iter().zip(a.chunks(2)) {
            let hi = c.get(1).map_or(0, |&x| x as u32 as u64);
            w.store(c[0] as u32 as u64 | hi << 32, Ordering::Relaxed);
        }
        for (w, c) in wb.iter().zip(b.chunks(8)) {
            let mut v = [0u8; 8];
            for (v, &x) in v.iter_mut().zip(c) {
                *v = x as u8;
            }
            w.store(u64::from_le_bytes(v), Ordering::Relaxed);
        }
        self.seq.store(seq, Ordering::Release);
    }

    /// What [`Mail::put`] stored (after [`Mail::is`] saw its stamp).
    fn get(&self, a: &mut [i32], b: &mut [i8]) {
        let (wa, wb) = self.words.split_at(a.len().div_ceil(2));
        for (w, c) in wa.iter().zip(a.chunks_mut(2)) {
            let x = w.load(Ordering::Relaxed);
            c[0] = x as u32 as i32;
            if let Some(h) = c.get_mut(1) {
                *h = (x >> 32) as u32 as i32;
            }
        }
        for (w, c) in wb.iter().zip(b.chunks_mut(8)) {
            let v = w.load(Ordering::Relaxed).to_le_bytes();
            for (x, &v) in c.iter_mut().zip(&v) {
                *x = v as i8;
            }
        }
    }
}

/// What the helper finds when it waits for a byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// The byte its step needs.
    Byte(u8),
    /// The coder goes on alone from this step: hand the state back.
    HandBack,
}

/// Delays at pseudo-random points of the exchange, for tests: they make
/// either thread late at any point, as a loaded machine does; and a panic
/// of the helper at its `helper_panics_at`-th point, if given.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChaosSpec {
    pub(crate) seed: u64,
    pub(crate) helper_panics_at: Option<u64>,
}

struct Chaos {
    spec: ChaosSpec,
    count: AtomicU64,
    helper_count: AtomicU64,
}

impl Chaos {
    fn delay(&self, helper: bool) {
        if helper
            && self.helper_count.fetch_add(1, Ordering::Relaxed) + 1
                == self.spec.helper_panics_at.unwrap_or(0)
        {
            panic!("injected fault");
        }
        let n = self.count.fetch_add(1, Ordering::Relaxed);
        let seed = self.spec.seed;
        let mut x =
            (seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xD1B5_4A32_D192_ED03);
        x ^= x >> 29;
        match x % 64 {
            0 => sync::sleep_micros(x >> 8 & 0x1FF),
            1..=3 => sync::yield_now(),
            4..=7 => {
                for _ in 0..(x >> 8 & 0x3FF) {
                    core::hint::spin_loop();
                }
            }
            _ => {}
        }
    }
}

/// The shared words of one paired run; see the module docs.
pub(crate) struct Exchange {
    chains: usize,
    layers: usize,
    q: Vec<Mail>,
    byte: [AtomicU64; 2],
    solo: AtomicU64,
    state: Mail,
    stop: AtomicBool,
    to_coder: Bell,
    to_helper: Bell,
    chaos: Option<Chaos>,
}

/// Waits for `ready()`: spins up to [`sync::STALL`], then parks on `bell`.
/// `Some(stalled)` with whether it had to park, `None` if `stop` was set
/// (the other thread left) and `ready()` does not hold.
fn wait(bell: &Bell, stop: &AtomicBool, ready: &dyn Fn() -> bool) -> Option<bool> {
    let mut spin = sync::Spin::new();
    while spin.more() {
        if ready() {
            return Some(false);
        }
        if stop.load(Ordering::Acquire) {
            return ready().then_some(false);
        }
    }
    loop {
        if ready() {
            return Some(true);
        }
        if stop.load(Ordering::Acquire) {
            return ready().then_some(true);
        }
        bell.sleep(&|| ready() || stop.load(Ordering::Acquire));
    }
}

impl Exchange {
    /// An exchange for `chains` model chains of `layers` layers of `dim`
    /// values, and a handed-back state of `state_i32` + `state_i8` values.
    pub(crate) fn new(
        chains: usize,
        layers: usize,
        dim: usize,
        state_i32: usize,
        state_i8: usize,
        chaos: Option<ChaosSpec>,
    ) -> Exchange {
        Exchange {
            chains,
            layers,
            q: (0..chains * layers)
                .map(|_| Mail::new(Mail::words_for(0, dim)))
                .collect(),
            byte: [AtomicU64::new(0), AtomicU64::new(0)],
            solo: AtomicU64::new(0),
            state: Mail::new(Mail::words_for(state_i32, state_i8)),
            stop: AtomicBool::new(false),
            to_coder: Bell::new(),
            to_helper: Bell::new(),
            chaos: chaos.map(|spec| Chaos {
                spec,
                count: AtomicU64::new(0),
                helper_count: AtomicU64::new(0),
            }),
        }
    }

    fn jitter(&self, helper: bool) {
        if let Some(c) = &self.chaos {
            c.delay(helper);
        }
    }

    // ---- helper side ----

    /// Publishes layer `layer`'s new `q` of step `j`.
    pub(crate) fn put_q(&self, j: usize, layer: usize, q: &[i8]) {
        self.jitter(true);
        self.q[(j % self.chains) * self.layers + layer].put(j as u64 + 1, &[], q);
        self.to_coder.ring();
    }

    /// The byte step `j` needs (byte `j - chains`), or [`Next::HandBack`]
    /// if the coder goes on alone from step `j`; `None` if the coder left.
    pub(crate) fn await_byte(&self, j: usize) -> Option<Next> {
        self.jitter(true);
        let k = j % self.chains;
        let want = (j - self.chains) as u64 + 1;
        let byte = &self.byte[k];
        let hand_back = || self.solo.load(Ordering::Acquire) == j as u64 + 1;
        let ready = || byte.load(Ordering::Acquire) >> 8 == want || hand_back();
        wait(&self.to_helper, &self.stop, &ready)?;
        let b = byte.load(Ordering::Acquire);
        Some(match b >> 8 == want {
            true => Next::Byte(b as u8),
            false => Next::HandBack,
        })
    }

    /// Hands the state back at step `j` (the one [`Exchange::await_byte`]
    /// answered [`Next::HandBack`] for).
    pub(crate) fn hand_back(&self, j: usize, a: &[i32], b: &[i8]) {
        self.jitter(true);
        self.state.put(j as u64 + 1, a, b);
        self.to_coder.ring();
    }

    // ---- coder side ----

    /// Waits for layer `layer`'s `q` of step `j` and copies it to `q`;
    /// `Some(stalled)` (whether the wait had to park), `None` if the helper
    /// left.
    pub(crate) fn await_q(&self, j: usize, layer: usize, q: &mut [i8]) -> Option<bool> {
        self.jitter(false);
        let mail = &self.q[(j % self.chains) * self.layers + layer];
        let stalled = wait(&self.to_coder, &self.stop, &|| mail.is(j as u64 + 1))?;
        mail.get(&mut [], q);
        Some(stalled)
    }

    /// Publishes byte `j`.
    pub(crate) fn put_byte(&self, j: usize, x: u8) {
        self.byte[j % self.chains].store((j as u64 + 1) << 8 | x as u64, Ordering::Release);
        self.to_helper.ring();
    }

    /// Goes on alone from byte `j`, which must not have been published
    /// (bytes before it must): the helper stops before step `j + chains`
    /// (which must exist) and its state after every step before that is
    /// copied to `a` and `b`. `None` if the helper left without it.
    pub(crate) fn take_back(&self, j: usize, a: &mut [i32], b: &mut [i8]) -> Option<()> {
        self.jitter(false);
        let s = (j + self.chains) as u64 + 1;
        self.solo.store(s, Ordering::Release);
        self.to_helper.ring();
        wait(&self.to_coder, &self.stop, &|| self.state.is(s))?;
        self.state.get(a, b);
        Some(())
    }

    /// A guard that marks this side as gone when dropped (normally or by a
    /// panic): `coder` for the coder's side.
    pub(crate) fn leave_guard(&self, coder: bool) -> Leave<'_> {
        Leave { x: self, coder }
    }
}

/// Sets `stop` and wakes the other side when its thread leaves its part of
/// the exchange, normally or by unwinding.
pub(crate) struct Leave<'a> {
    x: &'a Exchange,
    coder: bool,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.x.stop.store(true, Ordering::Release);
        match self.coder {
            true => self.x.to_helper.ring(),
            false => self.x.to_coder.ring(),
        }
    }
}
