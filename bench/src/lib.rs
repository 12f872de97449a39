//! Benchmark support code.

pub mod join_pair;
pub mod relay_rig;
