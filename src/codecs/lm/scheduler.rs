//! The batched scheduler: many chains side by side, one batched model step
//! for all of them, then each one's coding step.
//!
//! A job ([`ChainJob`]) is one chain's work: it takes the frequencies of
//! its next symbol and codes, decodes or measures that symbol. `batch`
//! lanes are in flight; each step advances every live lane by one symbol
//! in one call of the backend, and a lane whose job is finished takes the
//! next job at once. Results never depend on the batch, the threads or the
//! order in which lanes finish: each chain's frequencies depend only on its
//! own symbols ([`StepBackend`]'s contract).

use super::backend::StepBackend;
use std::sync::Arc;

/// Most lanes one thread advances through the whole model at a time (a
/// thread with more live lanes does several sub-steps). Speed only.
const SUB_BATCH: usize = 64;

/// What a job did with one symbol's frequencies.
pub(crate) enum Advance<T> {
    /// It coded this symbol, the chain's next input.
    Symbol(u8),
    /// It coded a symbol after which the chain restarts from the zero
    /// state (its next input is the start symbol).
    Reset,
    /// It is finished, with this result.
    Done(T),
}

/// One chain's work for the scheduler.
pub(crate) trait ChainJob: Send + Sized {
    /// The job's result.
    type Output: Send;
    /// The result if the job has no symbol at all, or the job back.
    fn finish_empty(self) -> Result<Self::Output, Self>;
    /// Codes the job's next symbol with its frequency table `f`.
    fn advance(&mut self, f: &[u32; 256]) -> Advance<Self::Output>;
}

/// A job in flight and its chain's next input.
struct Lane<J: ChainJob> {
    index: usize,
    input: u16,
    job: J,
    done: Option<J::Output>,
    /// The chain restarts from the zero state before the next step.
    reset: bool,
}

impl<J: ChainJob> Lane<J> {
    fn new(index: usize, job: J) -> Lane<J> {
        Lane {
            index,
            input: 256,
            job,
            done: None,
            reset: false,
        }
    }

    fn advance(&mut self, f: &[u32; 256]) {
        match self.job.advance(f) {
            Advance::Symbol(x) => self.input = x as u16,
            Advance::Reset => self.reset = true,
            Advance::Done(d) => self.done = Some(d),
        }
    }
}

/// Runs jobs on a backend with `threads` threads (`pool`: none for one).
#[derive(Debug)]
pub(crate) struct Scheduler<B: StepBackend> {
    pub(crate) backend: B,
    pub(crate) threads: usize,
    pub(crate) pool: Option<Arc<rayon::ThreadPool>>,
}

impl<B: StepBackend> Scheduler<B> {
    /// Runs `n` jobs with up to `batch` lanes in flight and returns their
    /// results in job order.
    pub(crate) fn run<J: ChainJob>(
        &self,
        jobs: impl Iterator<Item = J> + Send,
        n: usize,
        batch: usize,
    ) -> Vec<J::Output> {
        let Some(pool) = &self.pool else {
            return self.run_local(jobs, n, batch);
        };
        let mut results: Vec<Option<J::Output>> = (0..n).map(|_| None).collect();
        let mut jobs = jobs.enumerate();
        let cap = batch.min(n.max(1));
        // the scheduler itself runs on a pool thread, so that each step
        // hands work to the other threads without a round trip through the
        // calling thread
        pool.install(|| {
            self.run_inner(
                &mut || jobs.next(),
                &mut |i, d| results[i] = Some(d),
                cap,
                false,
            )
        });
        results
            .into_iter()
            .map(|r| r.expect("every job finishes"))
            .collect()
    }

    /// [`Scheduler::run`] on the calling thread alone, whatever the pool:
    /// for the model next to a coder thread (a batched step split over the
    /// pool's threads waits for its slowest part, and with the coder and
    /// other work running there are more busy threads than processors).
    pub(crate) fn run_local<J: ChainJob>(
        &self,
        jobs: impl Iterator<Item = J>,
        n: usize,
        batch: usize,
    ) -> Vec<J::Output> {
        let mut results: Vec<Option<J::Output>> = (0..n).map(|_| None).collect();
        let mut jobs = jobs.enumerate();
        let cap = batch.min(n.max(1));
        self.run_inner(
            &mut || jobs.next(),
            &mut |i, d| results[i] = Some(d),
            cap,
            true,
        );
        results
            .into_iter()
            .map(|r| r.expect("every job finishes"))
            .collect()
    }

    /// [`Scheduler::run_split_with`] holding nothing.
    #[cfg(any(test, feature = "testutil"))]
    pub(crate) fn run_split<J: ChainJob>(
        &self,
        jobs: impl Iterator<Item = J> + Send,
        n: usize,
        batch: usize,
    ) -> Vec<J::Output> {
        self.run_split_with(jobs, n, batch, |_| ())
    }

    /// Like [`Scheduler::run`], but each thread runs its own scheduler over
    /// its share of the lanes, taking jobs from a common queue: no
    /// synchronisation per step. For jobs whose coding step is as costly
    /// as the model step and whose lanes are few (context mixing).
    ///
    /// Each thread holds `hold(lanes)` (for its share of the lanes) while
    /// it runs them: a lease of the decoders' memory, taken by the thread
    /// that uses it. A worker runs its lanes on its own thread alone, so it
    /// never waits for other work of the pool while it holds what `hold`
    /// gave. A backend that steps all lanes at once (a GPU) runs them all
    /// on the calling thread, which holds `hold(lanes)` meanwhile.
    pub(crate) fn run_split_with<J: ChainJob, G>(
        &self,
        jobs: impl Iterator<Item = J> + Send,
        n: usize,
        batch: usize,
        hold: impl Fn(usize) -> G + Sync,
    ) -> Vec<J::Output> {
        let cap = batch.min(n.max(1));
        let pool = match &self.pool {
            Some(pool) if cap > 1 && !self.backend.whole_batch() => pool,
            _ => {
                // one step for all lanes (a GPU), the coding steps on this
                // thread too: a holder that split them over the pool would
                // wait for the pool, where a thread may be waiting for
                // what it holds
                let _held = hold(cap);
                return self.run_local(jobs, n, batch);
            }
        };
        let workers = self.threads.min(cap);
        let per = cap.div_ceil(workers);
        let queue = std::sync::Mutex::new(jobs.enumerate());
        let results: std::sync::Mutex<Vec<Option<J::Output>>> =
            std::sync::Mutex::new((0..n).map(|_| None).collect());
        pool.scope(|sc| {
            for _ in 0..workers {
                sc.spawn(|_| {
                    let _held = hold(per);
                    self.run_inner(
                        &mut || queue.lock().expect("job queue").next(),
                        &mut |i, d| results.lock().expect("results")[i] = Some(d),
                        per,
                        true,
                    )
                });
            }
        });
        results
            .into_inner()
            .expect("results")
            .into_iter()
            .map(|r| r.expect("every job finishes"))
            .collect()
    }

    /// Runs jobs from `next` with up to `cap` lanes, handing each result to
    /// `put`; `local` keeps every step on the calling thread.
    fn run_inner<J: ChainJob>(
        &self,
        next: &mut dyn FnMut() -> Option<(usize, J)>,
        put: &mut dyn FnMut(usize, J::Output),
        cap: usize,
        local: bool,
    ) {
        let b = &self.backend;
        let mut lanes: Vec<Lane<J>> = Vec::with_capacity(cap);
        let mut chains = b.new_chains(cap);
        let (nthreads, per) = match (local, b.whole_batch()) {
            (_, true) => (1, cap),
            (true, false) => (1, cap.min(SUB_BATCH)),
            (false, false) => {
                let t = self.threads.min(cap);
                (t, cap.div_ceil(t).min(SUB_BATCH))
            }
        };
        let mut scratch: Vec<B::Scratch> = (0..nthreads).map(|_| b.new_scratch(per)).collect();

        // next job that has at least one symbol; empty ones finish here
        let mut next_job = |put: &mut dyn FnMut(usize, J::Output)| -> Option<(usize, J)> {
            while let Some((i, job)) = next() {
                match job.finish_empty() {
                    Ok(done) => put(i, done),
                    Err(job) => return Some((i, job)),
                }
            }
            None
        };

        while lanes.len() < cap {
            let Some((index, job)) = next_job(put) else {
                break;
            };
            lanes.push(Lane::new(index, job));
        }
        while !lanes.is_empty() {
            let live = lanes.len();
            if b.whole_batch() {
                self.step_whole(
                    &mut lanes,
                    b.part(&mut chains, live),
                    &mut scratch[0],
                    local,
                );
            } else {
                self.step_all(&mut lanes, b.part(&mut chains, live), &mut scratch);
            }
            // retire finished lanes; refill or compact
            let mut i = 0;
            while i < lanes.len() {
                if let Some(done) = lanes[i].done.take() {
                    put(lanes[i].index, done);
                    b.reset_chain(&mut chains, i);
                    if let Some((index, job)) = next_job(put) {
                        lanes[i] = Lane::new(index, job);
                        i += 1;
                    } else {
                        let last = lanes.len() - 1;
                        if i != last {
                            b.move_chain(&mut chains, last, i);
                        }
                        lanes.swap_remove(i);
                    }
                } else {
                    if lanes[i].reset {
                        // a fresh model state, as at the start of a chain
                        lanes[i].reset = false;
                        lanes[i].input = 256;
                        b.reset_chain(&mut chains, i);
                    }
                    i += 1;
                }
            }
        }
    }

    /// One model step for every live lane in one call of the backend (in
    /// calls of the scratch's capacity), followed by the lanes' coding
    /// steps, split over the pool's threads unless `local`.
    fn step_whole<J: ChainJob>(
        &self,
        lanes: &mut [Lane<J>],
        mut part: B::Part<'_>,
        scratch: &mut B::Scratch,
        local: bool,
    ) {
        use rayon::prelude::*;
        let b = &self.backend;
        let mut start = 0;
        while start < lanes.len() {
            let nb = (lanes.len() - start).min(b.capacity(scratch));
            let lanes = &mut lanes[start..start + nb];
            let inputs: Vec<u16> = lanes.iter().map(|l| l.input).collect();
            let freqs = b.step(&mut part, start, &inputs, scratch);
            match &self.pool {
                Some(pool) if !local && nb > 1 => {
                    // contiguous shares, a few per thread
                    let min = nb.div_ceil(4 * self.threads).max(1);
                    pool.install(|| {
                        lanes
                            .par_iter_mut()
                            .zip(freqs.par_iter())
                            .with_min_len(min)
                            .for_each(|(lane, f)| lane.advance(f))
                    });
                }
                _ => {
                    for (lane, f) in lanes.iter_mut().zip(freqs) {
                        lane.advance(f);
                    }
                }
            }
            start += nb;
        }
    }

    /// One model step for every live lane, split over the threads in fixed
    /// contiguous slices, followed by each lane's coding step.
    fn step_all<J: ChainJob>(
        &self,
        lanes: &mut [Lane<J>],
        part: B::Part<'_>,
        scratch: &mut [B::Scratch],
    ) {
        let b = &self.backend;
        let live = lanes.len();
        let work = |lanes: &mut [Lane<J>], mut part: B::Part<'_>, s: &mut B::Scratch| {
            let mut inputs = [0u16; SUB_BATCH];
            // sub-batches bounded by the scratch capacity and the input buffer
            let mut start = 0;
            while start < lanes.len() {
                let nb = (lanes.len() - start).min(b.capacity(s)).min(inputs.len());
                for (k, lane) in lanes[start..start + nb].iter().enumerate() {
                    inputs[k] = lane.input;
                }
                let freqs = b.step(&mut part, start, &inputs[..nb], s);
                for (lane, f) in lanes[start..start + nb].iter_mut().zip(freqs) {
                    lane.advance(f);
                }
                start += nb;
            }
        };
        match &self.pool {
            Some(pool) if live > 1 && scratch.len() > 1 => {
                let parts = scratch.len().min(live);
                pool.scope(|sc| {
                    let mut lanes = lanes;
                    let mut part = part;
                    let mut rest_scratch = &mut scratch[..parts];
                    for t in 0..parts {
                        let n = (t + 1) * live / parts - t * live / parts;
                        let (l0, l1) = std::mem::take(&mut lanes).split_at_mut(n);
                        let (p0, p1) = b.split_part(part, n);
                        let (sc0, sc1) =
                            std::mem::take(&mut rest_scratch).split_first_mut().unwrap();
                        (lanes, part, rest_scratch) = (l1, p1, sc1);
                        if t + 1 == parts {
                            work(l0, p0, sc0);
                            break;
                        } else {
                            sc.spawn(move |_| work(l0, p0, sc0));
                        }
                    }
                });
            }
            _ => work(lanes, part, &mut scratch[0]),
        }
    }
}
