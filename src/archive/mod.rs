//! Archive I/O: archives made from directories and written back to them,
//! joining the container, the coding plan and the codecs; member
//! selection, `--strip-components`, `-O`, the files of an index range; the
//! safe writer and its link rules.

pub mod create;
pub mod extract;
pub mod select;
pub mod symlinks;
