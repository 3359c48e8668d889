//! An ordered, bounded parallel pipeline.
//!
//! Inputs are coded on a thread pool while results come out in input order,
//! interleaved with items that need no work (entry records). Several inputs
//! can be grouped into one job, which is how the batched language-model codec
//! sees many chunks at once. Memory is bounded by the caller, who drains
//! results whenever [`Pipeline::is_full`] says so.
//!
//! A job that panics does not take the process down (rayon's default for a
//! panic in `spawn` is to abort): the panic is caught on the worker and each
//! of the job's results is returned as a [`WorkerPanic`]. A panic whose
//! payload is a [`DeviceFault`] is marked as one: it is the accelerator's
//! fault, not lza's.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc;

/// The work done for one job: inputs in, one output per input, in order.
pub type Job<I, T> = dyn Fn(Vec<I>) -> Vec<T> + Send + Sync;

/// A job panicked (or gave fewer results than inputs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerPanic {
    /// The panic's message.
    pub msg: String,
    /// Whether the payload was a [`DeviceFault`].
    pub device_fault: bool,
}

impl WorkerPanic {
    fn new(msg: impl Into<String>) -> WorkerPanic {
        WorkerPanic {
            msg: msg.into(),
            device_fault: false,
        }
    }
}

/// The payload of a panic (`std::panic::panic_any`) raised where an
/// accelerator or its driver failed in the middle of a model step, which
/// has no error path because on the CPU it cannot fail: the caller reports
/// it as a device error rather than as a fault in lza.
#[derive(Debug, Clone)]
pub struct DeviceFault(pub String);

struct Group<T> {
    rx: mpsc::Receiver<Result<Vec<T>, WorkerPanic>>,
    results: RefCell<Option<Result<Vec<Option<T>>, WorkerPanic>>>,
}

impl<T> Group<T> {
    fn take(&self, index: usize) -> Result<T, WorkerPanic> {
        let mut results = self.results.borrow_mut();
        if results.is_none() {
            // The worker always sends: the job's panics are caught there.
            let v = self
                .rx
                .recv()
                .unwrap_or_else(|_| Err(WorkerPanic::new("a worker thread stopped")));
            *results = Some(v.map(|v| v.into_iter().map(Some).collect()));
        }
        match results.as_mut().expect("results") {
            Ok(v) => v
                .get_mut(index)
                .and_then(Option::take)
                .ok_or_else(|| WorkerPanic::new("a job gave fewer results than inputs")),
            Err(p) => Err(p.clone()),
        }
    }
}

/// A panic's message, as far as it is text.
pub fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    match (p.downcast_ref::<&str>(), p.downcast_ref::<String>()) {
        (Some(s), _) => s.to_string(),
        (_, Some(s)) => s.clone(),
        _ => match p.downcast_ref::<DeviceFault>() {
            Some(DeviceFault(s)) => s.clone(),
            None => "(no message)".into(),
        },
    }
}

enum Slot<T> {
    Ready(T),
    Part(Rc<Group<T>>, usize),
    /// A member of the group still being collected (not yet submitted).
    Open(usize),
}

struct OpenGroup<I> {
    inputs: Vec<I>,
    weight: usize,
    /// Index in `queue` numbering of the group's first slot (for flushing).
    id: u64,
}

/// Ordered parallel pipeline; see the module docs.
pub struct Pipeline<I: Send + 'static, T: Send + 'static> {
    pool: Arc<rayon::ThreadPool>,
    job: Arc<Job<I, T>>,
    queue: VecDeque<(u64, Slot<T>, usize)>,
    open: Option<OpenGroup<I>>,
    next_group_id: u64,
    weight_in_flight: usize,
    max_weight: usize,
    max_items: usize,
}

impl<I: Send + 'static, T: Send + 'static> Pipeline<I, T> {
    /// A pipeline running `job` on `pool`, full when more than `max_weight`
    /// (e.g. bytes) or `max_items` slots are pending.
    pub fn new(
        pool: Arc<rayon::ThreadPool>,
        job: Arc<Job<I, T>>,
        max_weight: usize,
        max_items: usize,
    ) -> Self {
        Pipeline {
            pool,
            job,
            queue: VecDeque::new(),
            open: None,
            next_group_id: 0,
            weight_in_flight: 0,
            max_weight,
            max_items,
        }
    }

    /// Queue an item that needs no work.
    pub fn push_ready(&mut self, item: T) {
        self.queue.push_back((u64::MAX, Slot::Ready(item), 0));
    }

    /// Queue an input as a job of its own.
    pub fn push_single(&mut self, input: I, weight: usize) {
        let group = self.spawn(vec![input]);
        self.weight_in_flight += weight;
        self.queue
            .push_back((u64::MAX, Slot::Part(group, 0), weight));
    }

    /// Queue an input into the group being collected; the group is submitted
    /// once its inputs weigh `group_weight` or more, or when a result of it
    /// is needed.
    pub fn push_grouped(&mut self, input: I, weight: usize, group_weight: usize) {
        if self.open.is_none() {
            self.next_group_id += 1;
            self.open = Some(OpenGroup {
                inputs: Vec::new(),
                weight: 0,
                id: self.next_group_id,
            });
        }
        let open = self.open.as_mut().expect("just set");
        let index = open.inputs.len();
        open.inputs.push(input);
        open.weight += weight;
        let (id, group_full) = (open.id, open.weight >= group_weight);
        self.weight_in_flight += weight;
        self.queue.push_back((id, Slot::Open(index), weight));
        if group_full {
            self.flush();
        }
    }

    /// Submit the group being collected, if any.
    pub fn flush(&mut self) {
        let Some(open) = self.open.take() else { return };
        let group = self.spawn(open.inputs);
        for (id, slot, _) in self.queue.iter_mut() {
            if *id == open.id
                && let Slot::Open(i) = *slot
            {
                *slot = Slot::Part(group.clone(), i);
            }
        }
    }

    fn spawn(&self, inputs: Vec<I>) -> Rc<Group<T>> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job = self.job.clone();
        self.pool.spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(inputs))).map_err(
                |p| match p.downcast_ref::<DeviceFault>() {
                    Some(DeviceFault(msg)) => WorkerPanic {
                        msg: msg.clone(),
                        device_fault: true,
                    },
                    None => {
                        WorkerPanic::new(format!("a worker thread panicked: {}", panic_text(&*p)))
                    }
                },
            );
            // If the receiver is gone the caller has given up; nothing to do.
            let _ = tx.send(r);
        });
        Rc::new(Group {
            rx,
            results: RefCell::new(None),
        })
    }

    /// True when the caller should [`pop`](Self::pop) before pushing more.
    pub fn is_full(&self) -> bool {
        self.weight_in_flight > self.max_weight || self.queue.len() > self.max_items
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The oldest result, waiting for it if needed; `None` when empty, and
    /// `Some(Err)` if the job that made it panicked.
    pub fn pop(&mut self) -> Option<Result<T, WorkerPanic>> {
        if matches!(self.queue.front(), Some((_, Slot::Open(_), _))) {
            self.flush();
        }
        let (_, slot, weight) = self.queue.pop_front()?;
        self.weight_in_flight -= weight;
        Some(match slot {
            Slot::Ready(t) => Ok(t),
            Slot::Part(group, i) => group.take(i),
            Slot::Open(_) => unreachable!("flushed above"),
        })
    }
}

/// The pool of `-T`: `threads` threads (at least one), `lza-worker-N`.
///
/// A run has one such pool, whoever builds it: the language-model codec
/// when there is a model (`lm::LmCodec::new`; the archive layer then runs
/// its jobs on it through `codecs::TextCoder::pool`), the archive layer
/// otherwise. Beyond it, a lone context-mixing chunk with the model may
/// take one more thread for itself (the model's helper when decoding, the
/// coder when encoding), but only while no other coding call is in
/// progress, when the pool has no other work.
pub fn try_thread_pool(
    threads: usize,
) -> Result<Arc<rayon::ThreadPool>, rayon::ThreadPoolBuildError> {
    Ok(Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("lza-worker-{i}"))
            .build()?,
    ))
}

/// [`try_thread_pool`], for callers that cannot go on without threads.
pub fn thread_pool(threads: usize) -> Arc<rayon::ThreadPool> {
    try_thread_pool(threads).expect("cannot start worker threads")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_out_in_order_with_groups_and_ready_items() {
        let job: Arc<Job<u32, u32>> = Arc::new(|v: Vec<u32>| {
            // Uneven work so that jobs finish out of order.
            std::thread::sleep(std::time::Duration::from_micros((v[0] % 7) as u64 * 300));
            v.into_iter().map(|x| x * 2).collect()
        });
        let mut p = Pipeline::new(thread_pool(3), job, 10, 1000);
        let mut out = Vec::new();
        let mut expect = Vec::new();
        for i in 0..200u32 {
            match i % 5 {
                0 => p.push_ready(1_000_000 + i),
                1 | 2 => p.push_grouped(i, 1, 3),
                _ => p.push_single(i, 1),
            }
            expect.push(if i % 5 == 0 { 1_000_000 + i } else { i * 2 });
            while p.is_full() {
                out.push(p.pop().unwrap().unwrap());
            }
        }
        while let Some(x) = p.pop() {
            out.push(x.unwrap());
        }
        assert_eq!(out, expect);
    }

    /// A job that panics gives an error for each of its results; the other
    /// jobs' results and their order are untouched, and the process lives.
    /// A device fault's payload is kept as such.
    #[test]
    fn a_panicking_job_is_an_error_not_an_abort() {
        let job: Arc<Job<u32, u32>> = Arc::new(|v: Vec<u32>| {
            if v.contains(&13) {
                panic!("unlucky {}", v[0]);
            }
            if v.contains(&17) {
                std::panic::panic_any(DeviceFault("CUDA launch failed: lost".into()));
            }
            v.into_iter().map(|x| x + 1).collect()
        });
        let mut p = Pipeline::new(thread_pool(2), job, 1000, 1000);
        for i in 0..20u32 {
            match i {
                12..=14 => p.push_grouped(i, 1, 3),
                _ => p.push_single(i, 1),
            }
        }
        let out: Vec<_> = std::iter::from_fn(|| p.pop()).collect();
        for (i, r) in out.iter().enumerate() {
            match i {
                12..=14 => assert_eq!(
                    r.as_ref().unwrap_err(),
                    &WorkerPanic::new("a worker thread panicked: unlucky 12")
                ),
                17 => assert_eq!(
                    r.as_ref().unwrap_err(),
                    &WorkerPanic {
                        msg: "CUDA launch failed: lost".into(),
                        device_fault: true
                    }
                ),
                _ => assert_eq!(r.as_ref().unwrap(), &(i as u32 + 1)),
            }
        }
    }
}
