//! Per-operation rates of the homomorphic schemes, packing and the PSI curve operations.
//!
//! `cargo bench -p ferry-crypto --bench schemes` — criterion reports each as elements/s on
//! one core. The same operations, with a textbook-Paillier baseline from the same run, are in
//! `ferry bench crypto [--json]`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferry_crypto::ecdh::{EcdhGroup, Ristretto255};
use ferry_crypto::encoding::FixedPoint;
use ferry_crypto::packing::PackingLayout;
use ferry_crypto::rug::Integer;
use ferry_crypto::{HePublicKey, HeSecretKey, OuSecretKey, PaillierSecretKey, Randomizer};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::hint::black_box;
use std::time::Duration;

fn scheme<S: HeSecretKey>(c: &mut Criterion, name: &str, sk: &S) {
    let pk = sk.public();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let m = FixedPoint::default().encode(-3.25).unwrap();
    let c1 = pk.encrypt(&m, &mut rng).unwrap();
    let c2 = pk.encrypt(&m, &mut rng).unwrap();
    let k = Integer::from(0x9e37_79b9_7f4a_7c15u64);
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    g.bench_function("encrypt (public key)", |b| {
        b.iter(|| black_box(pk.encrypt(&m, &mut rng).unwrap()))
    });
    g.bench_function("encrypt (key owner)", |b| {
        b.iter(|| black_box(sk.encrypt(&m, &mut rng).unwrap()))
    });
    g.bench_function("decrypt", |b| b.iter(|| black_box(sk.decrypt(&c1))));
    let mut acc = c1.clone();
    g.bench_function("add", |b| b.iter(|| pk.add_assign(&mut acc, &c2)));
    g.bench_function("scalar-mul (64-bit)", |b| {
        b.iter(|| black_box(pk.mul_plain(&c1, &k)))
    });
    g.finish();
}

fn schemes(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(2048);
    let paillier = PaillierSecretKey::generate(2048, &mut rng).unwrap();
    paillier.public().precompute();
    scheme(c, "paillier-2048", &paillier);
    let textbook = paillier.public().with_randomizer(Randomizer::Textbook);
    let m = Integer::from(7);
    c.benchmark_group("paillier-2048-textbook (baseline)")
        .throughput(Throughput::Elements(1))
        .sample_size(10)
        .bench_function("encrypt", |b| {
            b.iter(|| black_box(textbook.encrypt(&m, &mut rng).unwrap()))
        });
    let ou = OuSecretKey::generate(2048, &mut rng).unwrap();
    ou.public().precompute();
    scheme(c, "ou-2048", &ou);

    let pk = paillier.public();
    let layout = PackingLayout::new(pk.plaintext_bits(), 42, 1 << 20).unwrap();
    let codec = FixedPoint::default();
    let pair = [
        codec.encode(-0.4375).unwrap(),
        codec.encode(0.2109375).unwrap(),
    ];
    let bins: Vec<_> = (0..layout.ciphertexts_per_pack(2))
        .map(|i| pk.encrypt(&Integer::from(i), &mut rng).unwrap())
        .collect();
    let mut g = c.benchmark_group("packing");
    g.throughput(Throughput::Elements(1));
    g.bench_function("pack+unpack 2 slots", |b| {
        b.iter(|| black_box(layout.unpack(&layout.pack(&pair).unwrap(), 2)))
    });
    g.throughput(Throughput::Elements(bins.len() as u64));
    g.sample_size(10)
        .bench_function("pack (g,h) bin ciphertexts (per bin)", |b| {
            b.iter(|| black_box(layout.pack_ciphertexts(pk, &bins, 2).unwrap()))
        });
    g.finish();

    let key = Ristretto255::random_key(&mut rng);
    let element = Ristretto255::blind(&key, b"x");
    let mut g = c.benchmark_group("ristretto255");
    g.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    g.bench_function("hash+mul+compress", |b| {
        b.iter(|| {
            n += 1;
            black_box(Ristretto255::blind(&key, &n.to_le_bytes()))
        })
    });
    g.bench_function("decompress+mul+compress", |b| {
        b.iter(|| black_box(Ristretto255::reblind(&key, &element)))
    });
    g.finish();
}

criterion_group!(benches, schemes);
criterion_main!(benches);
