//! Rates of the homomorphic operations the protocol spends its time in (one core unless noted).
use ferry_crypto::{HePublicKey, HeSecretKey, OuSecretKey, PaillierSecretKey};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rug::Integer;
use std::time::Instant;

fn run<S: HeSecretKey>(name: &str, bits: u32) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let t = Instant::now();
    let sk = S::generate(bits, &mut rng).unwrap();
    println!("{name}: keygen {:?}", t.elapsed());
    let pk = sk.public().clone();
    let n = 5000;
    let ms: Vec<Integer> = (0..n).map(|i| Integer::from(i) << 600u32).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        let t = Instant::now();
        let cts = sk.encrypt_many(&ms, &mut rng).unwrap();
        println!(
            "{name}: owner encrypt {:.0}/s",
            n as f64 / t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        let _ = pk.encrypt_many(&ms, &mut rng).unwrap();
        println!(
            "{name}: public encrypt {:.0}/s",
            n as f64 / t.elapsed().as_secs_f64()
        );
        let batch = pk.encode_batch(&cts);
        let t = Instant::now();
        let dec = pk.decode_batch(&batch).unwrap();
        println!(
            "{name}: decode_batch {:.0}/s",
            n as f64 / t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        let mut acc = pk.zero();
        for c in &dec {
            pk.add_assign(&mut acc, c);
        }
        println!("{name}: add {:.0}/s", n as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let _ = pk.encode_batch(&cts);
        println!(
            "{name}: encode_batch {:.0}/s",
            n as f64 / t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        for c in &dec[..200] {
            let _ = pk.rerandomize(c, &mut rng);
        }
        println!(
            "{name}: rerandomize {:.0}/s",
            200.0 / t.elapsed().as_secs_f64()
        );
    });
}

fn main() {
    run::<PaillierSecretKey>("paillier-2048", 2048);
    run::<OuSecretKey>("ou-2048", 2048);
}
