//! The safe DPDK layer (being written).
