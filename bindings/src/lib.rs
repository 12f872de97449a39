//! DPDK FFI (being written).
