//! Archive I/O: archives made from directories and written back to them,
//! joining the container, the coding plan and the codecs; member
//! selection, `--strip-components`, `-O`, the files of an index range; the
//! safe writer and its link rules.

pub mod create;
pub mod extract;
pub mod select;
pub mod symlinks;

use crate::format::error::Error;
use crate::runtime::pipeline::WorkerPanic;

/// The error for a coding job that panicked: a device error where the
/// accelerator failed in a step, else an internal error (a fault in lza).
pub(crate) fn worker_error(p: WorkerPanic) -> Error {
    match p.device_fault {
        true => Error::Device(format!(
            "the GPU failed in a model step ({}); nothing was found corrupt, and \
             --device cpu does the same work without it",
            p.msg
        )),
        false => Error::internal(p.msg),
    }
}
