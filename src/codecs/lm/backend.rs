//! The seam between the model as a probability source and what computes it.
//!
//! A [`StepBackend`] holds a validated model and the recurrent state of
//! batches of *chains* (a chain is one sequence of symbols the model reads
//! from its zero state: a language-model chunk, or a stream of a
//! context-mixing chunk between resets). It steps a batch of chains by one
//! symbol each and returns each chain's frequency table of its next symbol
//! (format-spec 7.2-7.4). Everything above it (the batched scheduler, the
//! range coder, context mixing) sees only symbols in and frequencies out.
//!
//! The state lives in the backend ([`StepBackend::Chains`]): host memory
//! for the CPU backend, device memory for a backend on an accelerator,
//! which then moves only the inputs and the frequencies per step.
//!
//! # Contract
//!
//! - **Bit-identical frequencies.** For the same model and the same
//!   symbols, every backend returns the same `u32` tables bit for bit, on
//!   every machine, kernel path, thread count and batch size: the tables
//!   drive an arithmetic coder, and an archive made with one backend must
//!   extract with any other. So a backend computes exactly the arithmetic of
//!   format-spec 7.2-7.4 (exact integer sums; the float operations
//!   element by element in the spec's order, without fused multiply-add,
//!   with the spec's own `exp`, `sigmoid` and `tanh`), never an
//!   approximation of it.
//! - **Chains are independent.** A chain's tables depend only on the model
//!   and on that chain's symbols since its last reset, never on which
//!   other chains share its batch, on their number or order, or on the part
//!   of the batch or thread that steps it.
//! - **Fresh chains.** A chain starts, and restarts after
//!   [`StepBackend::reset_chain`], at the zero state; its first input is the
//!   start symbol 256.
//!
//! An encoder knows every symbol in advance, so where a backend can run
//! whole sequences without the host between steps it may offer that as
//! well: the GPU's [`super::CudaBackend::known_bits`] returns the bit
//! probabilities that stepping each sequence gives, with the same bits.

/// The model as a pure probability source over batches of chains (see the
/// module docs for the contract every implementation keeps).
pub trait StepBackend: Send + Sync {
    /// The recurrent state of a batch of chains, held where the backend
    /// computes.
    type Chains: Send;
    /// Chains `0..n` of a batch, borrowed to be stepped; parts can be split
    /// and stepped on different threads at once.
    type Part<'a>: Send
    where
        Self: 'a;
    /// Working memory of one thread's steps, which also holds the
    /// frequencies of its last step.
    type Scratch: Send;

    /// State for up to `cap` chains, every one at the zero state.
    fn new_chains(&self, cap: usize) -> Self::Chains;
    /// Chain `i` back to the zero state.
    fn reset_chain(&self, chains: &mut Self::Chains, i: usize);
    /// Chain `from`'s state copied into chain `to` (the scheduler compacts
    /// its batch as chains finish); chain `from` is not stepped again
    /// before it is reset.
    fn move_chain(&self, chains: &mut Self::Chains, from: usize, to: usize);
    /// Chains `0..n` of `chains` as one part.
    fn part<'a>(&self, chains: &'a mut Self::Chains, n: usize) -> Self::Part<'a>;
    /// A part cut into its chains `0..at` and the rest.
    fn split_part<'a>(&self, part: Self::Part<'a>, at: usize) -> (Self::Part<'a>, Self::Part<'a>);
    /// Working memory for steps of up to `cap` chains at once.
    fn new_scratch(&self, cap: usize) -> Self::Scratch;
    /// Most chains one [`StepBackend::step`] with `scratch` may advance.
    fn capacity(&self, scratch: &Self::Scratch) -> usize;
    /// Whether one step should take every live chain of a batch at once,
    /// on one thread (a device that runs the chains in parallel itself),
    /// rather than parts of the batch on several threads.
    fn whole_batch(&self) -> bool {
        false
    }
    /// Advances chains `first..first + inputs.len()` of `part` by one
    /// symbol each (`inputs[b]`, 256 for the start symbol) and returns the
    /// frequency table of each one's next symbol, in order.
    fn step<'s>(
        &self,
        part: &mut Self::Part<'_>,
        first: usize,
        inputs: &[u16],
        scratch: &'s mut Self::Scratch,
    ) -> &'s [[u32; 256]];
}
