//! MPTCP crypto benchmarks: MP_JOIN HMAC with cached key state (target ≤ 150 ns), token
//! derivation, DSS checksum over a full segment.

use std::hint::black_box;

use criterion::{criterion_main, Criterion};
use dataplane::mptcp::crypto::{self, ConnKeys};
use dataplane::seq::Dsn;
use dataplane::wire::checksum;

fn benches(c: &mut Criterion) {
    let keys = ConnKeys::new(0xbb20_6e30_23b4_7a2d, 0x4192_3206_b758_35f5);
    let payload = [0x5au8; 1400];
    let mut g = c.benchmark_group("crypto");
    g.bench_function("join_synack_hmac_cached", |b| {
        b.iter(|| keys.synack_hmac(black_box(0xe8bf_89f6), black_box(0x2c79_7cde)))
    });
    g.bench_function("join_ack_hmac_verify_cached", |b| {
        let at_b = ConnKeys::new(0x4192_3206_b758_35f5, 0xbb20_6e30_23b4_7a2d);
        let hmac = at_b.ack_hmac(0x2c79_7cde, 0xe8bf_89f6);
        b.iter(|| keys.verify_ack_hmac(black_box(0xe8bf_89f6), 0x2c79_7cde, black_box(&hmac)))
    });
    g.bench_function("conn_keys_new", |b| {
        b.iter(|| ConnKeys::new(black_box(1), black_box(2)))
    });
    g.bench_function("token_idsn_derive", |b| {
        b.iter(|| crypto::derive(black_box(0x4192_3206_b758_35f5)))
    });
    g.bench_function("dss_checksum_1400B", |b| {
        b.iter(|| {
            let s = checksum::sum(black_box(&payload));
            crypto::dss_checksum(Dsn::new(black_box(7)), 1, 1400, s)
        })
    });
    g.finish();
}

mod group {
    criterion::criterion_group!(crypto, super::benches);
}
criterion_main!(group::crypto);
