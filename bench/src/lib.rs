//! Benchmark support code.

pub mod join_pair;
