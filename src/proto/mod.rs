//! Wire formats, pure and tested: nothing in here does I/O.

pub mod control;
pub mod relay;
pub mod url;
