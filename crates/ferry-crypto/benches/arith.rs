//! Modular multiplication backends side by side.
//!
//! `cargo bench -p ferry-crypto --bench arith` — the `gmp` rows are the baseline (GMP
//! multiplication + division); `portable` and `ifma` are the Montgomery backends (the latter
//! only where the CPU has AVX-512 IFMA). Inputs are fixed pseudo-random numbers (seeded).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ferry_crypto::arith::{Backend, MontModulus};
use ferry_crypto::rug::Integer;
use ferry_crypto::rug::rand::RandState;
use std::hint::black_box;
use std::time::Duration;

fn random_odd_modulus(rng: &mut RandState<'_>, bits: u32) -> Integer {
    let mut m = Integer::from(Integer::random_bits(bits, rng));
    m.set_bit(bits - 1, true);
    m.set_bit(0, true);
    m
}

fn rng() -> RandState<'static> {
    let mut rng = RandState::new();
    rng.seed(&Integer::from(0xfe77_u32));
    rng
}

fn bench_mul(c: &mut Criterion) {
    let mut rng = rng();
    for bits in [512u32, 683, 1024, 1366, 2048, 3072, 4096, 6144] {
        let m = random_odd_modulus(&mut rng, bits);
        let a = Integer::from(Integer::random_below_ref(&m, &mut rng));
        let b = Integer::from(Integer::random_below_ref(&m, &mut rng));
        let mut group = c.benchmark_group(format!("mul/{bits}"));
        for backend in Backend::available() {
            let Ok(mm) = MontModulus::with_backend(&m, backend) else {
                continue;
            };
            let (ra, rb) = (mm.to_residue(&a), mm.to_residue(&b));
            let mut out = mm.one();
            group.bench_function(BenchmarkId::new("mul_into", backend.name()), |bench| {
                bench.iter(|| mm.mul_into(&mut out, black_box(&ra), black_box(&rb)))
            });
            let mut acc = ra.clone();
            group.bench_function(BenchmarkId::new("square_assign", backend.name()), |bench| {
                bench.iter(|| mm.square_assign(black_box(&mut acc)))
            });
        }
        group.finish();
    }
}

fn bench_pow(c: &mut Criterion) {
    let mut rng = rng();
    // (modulus bits, exponent bits): Paillier-2048 CRT decryption and OU decryption are
    // 2048-bit moduli with ~1024-bit exponents; Paillier-2048 encryption is r^n mod n².
    for (bits, exp_bits) in [(2048u32, 1024u32), (683, 683), (1366, 683), (4096, 2048)] {
        let m = random_odd_modulus(&mut rng, bits);
        let base = Integer::from(Integer::random_below_ref(&m, &mut rng));
        let mut exp = Integer::from(Integer::random_bits(exp_bits, &mut rng));
        exp.set_bit(exp_bits - 1, true);
        let mut group = c.benchmark_group(format!("pow/{bits}-exp{exp_bits}"));
        group.sample_size(10);
        for backend in Backend::available() {
            let Ok(mm) = MontModulus::with_backend(&m, backend) else {
                continue;
            };
            let rb = mm.to_residue(&base);
            group.bench_function(backend.name(), |bench| {
                bench.iter(|| mm.pow(black_box(&rb), black_box(&exp)))
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = bench_mul, bench_pow
}
criterion_main!(benches);
