//! From results directories to verdicts: load a run, compare two runs cell by cell with
//! statistics over the repetitions, and gate on regressions and SLOs.

pub mod calibrate;
pub mod compare;
pub mod gate;
pub mod names;
pub mod rundir;
pub mod stats;
