//! Archives as sequences of records, above the bytes of [`crate::format`]:
//! the strict sequential reader that checks every rule across records, and
//! indexed archive files (seeking, ranges, sealing, concatenating).

pub mod index;
pub mod reader;
