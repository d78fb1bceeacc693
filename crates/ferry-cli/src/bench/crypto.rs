//! `ferry bench crypto`: single-core rates of every primitive the protocols spend time in.
//!
//! Every figure is the median of three timed runs on one thread. A baseline measured in the
//! same run (textbook Paillier encryption, GMP's multiply-and-divide) is printed beside the
//! figures so that ratios stay meaningful on a shared, noisy machine.

use super::machine::{Arithmetic, Machine, insecure_key_warning};
use super::median_rate;
use clap::Args;
use ferry_crypto::arith::{Backend, MontModulus};
use ferry_crypto::ecdh::{EcdhGroup, Ristretto255, Sm2Sm3};
use ferry_crypto::encoding::FixedPoint;
use ferry_crypto::packing::PackingLayout;
use ferry_crypto::random::random_bits;
use ferry_crypto::rug::Integer;
use ferry_crypto::{HePublicKey, HeSecretKey, OuSecretKey, PaillierSecretKey, Randomizer};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::Serialize;
use std::time::Instant;

#[derive(Args)]
pub struct CryptoBenchArgs {
    /// Short runs (about 15 s in all) for a quick look; the default takes about a minute.
    #[arg(long)]
    quick: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Key size in bits for both schemes.
    #[arg(long, default_value_t = 2048)]
    bits: u32,
}

/// One measured figure.
#[derive(Serialize)]
pub struct Entry {
    pub scheme: &'static str,
    pub key_bits: u32,
    pub op: &'static str,
    pub variant: &'static str,
    pub ops_per_sec_per_core: f64,
    /// The figure the foundation issue sets as a target, where it sets one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<f64>,
}

#[derive(Serialize)]
struct Report {
    machine: Machine,
    arith_backend: &'static str,
    arithmetic: Arithmetic,
    /// The inputs of the scheme measurements, so that another library can be measured on the
    /// same numbers (`bench/peers/`).
    workload: Workload,
    entries: Vec<Entry>,
}

/// Plaintexts and scalar of [`scheme_rates`], as decimal integers (they exceed JSON's exact
/// range for numbers).
#[derive(Serialize)]
struct Workload {
    /// Encrypted and decrypted: `-3.25` in fixed point with the default 40 fractional bits.
    plaintext: String,
    /// The second operand of ciphertext + ciphertext: `2.625` in the same encoding.
    plaintext2: String,
    /// The 64-bit scalar of scalar-mul.
    scalar: String,
}

/// The first plaintext, the second one and the scalar that every scheme is measured with.
fn workload() -> (Integer, Integer, Integer) {
    let codec = FixedPoint::default();
    (
        codec.encode(-3.25).expect("finite"),
        codec.encode(2.625).expect("finite"),
        // A 64-bit scalar, the size of a fixed-point weight or learning-rate factor.
        Integer::from(0x9e37_79b9_7f4a_7c15u64),
    )
}

pub fn run(args: CryptoBenchArgs) -> anyhow::Result<()> {
    let machine = Machine::detect();
    let budget = if args.quick { 0.25 } else { 1.0 };
    let mut rng = ChaCha20Rng::seed_from_u64(2048);
    let mut entries = Vec::new();
    let log = |msg: &str| {
        if !args.json {
            eprintln!("{msg}");
        }
    };

    log(&format!(
        "generating Paillier-{} and OU-{} keys...",
        args.bits, args.bits
    ));
    let t = Instant::now();
    let paillier = PaillierSecretKey::generate(args.bits, &mut rng)?;
    let paillier_keygen = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let ou = OuSecretKey::generate(args.bits, &mut rng)?;
    let ou_keygen = t.elapsed().as_secs_f64();
    paillier.public().precompute();
    ou.public().precompute();
    let backend = MontModulus::new(&Integer::from(paillier.public().n().square_ref()))?.backend();

    log("measuring Paillier...");
    scheme_rates(
        &paillier,
        "paillier",
        args.bits,
        budget,
        &mut rng,
        &mut entries,
        [8_000.0, 500.0, 300_000.0],
    );
    let textbook = paillier.public().with_randomizer(Randomizer::Textbook);
    let m = Integer::from(123_456_789u64);
    entries.push(Entry {
        scheme: "paillier",
        key_bits: args.bits,
        op: "encrypt",
        variant: "textbook r^n (baseline)",
        ops_per_sec_per_core: median_rate(3, budget, || {
            std::hint::black_box(textbook.encrypt(&m, &mut rng).unwrap());
        }),
        target: None,
    });
    entries.push(Entry {
        scheme: "paillier",
        key_bits: args.bits,
        op: "keygen",
        variant: "seconds per key (one sample)",
        ops_per_sec_per_core: 1.0 / paillier_keygen,
        target: None,
    });

    log("measuring Okamoto-Uchiyama...");
    scheme_rates(
        &ou,
        "ou",
        args.bits,
        budget,
        &mut rng,
        &mut entries,
        [50_000.0, 5_000.0, 400_000.0],
    );
    entries.push(Entry {
        scheme: "ou",
        key_bits: args.bits,
        op: "keygen",
        variant: "seconds per key (one sample)",
        ops_per_sec_per_core: 1.0 / ou_keygen,
        target: None,
    });

    log("measuring modular multiplication baselines...");
    let n2 = Integer::from(paillier.public().n().square_ref());
    let a = random_bits(&mut rng, n2.significant_bits() - 1);
    let b = random_bits(&mut rng, n2.significant_bits() - 1);
    let mut acc = a.clone();
    entries.push(Entry {
        scheme: "gmp",
        key_bits: n2.significant_bits(),
        op: "mulmod",
        variant: "GMP multiply + divide (baseline)",
        ops_per_sec_per_core: median_rate(3, budget, || {
            acc *= &b;
            acc %= &n2;
        }),
        target: None,
    });
    for backend in Backend::available() {
        let ring = MontModulus::with_backend(&n2, backend)?;
        let (ra, rb) = (ring.to_residue(&a), ring.to_residue(&b));
        let mut acc = ra.clone();
        entries.push(Entry {
            scheme: "arith",
            key_bits: n2.significant_bits(),
            op: "mulmod",
            variant: backend.name(),
            ops_per_sec_per_core: median_rate(3, budget, || ring.mul_assign(&mut acc, &rb)),
            target: None,
        });
    }

    log("measuring packing...");
    let pk = paillier.public();
    let codec = FixedPoint::default();
    let layout = PackingLayout::new(pk.plaintext_bits(), 42, 1 << 20)?;
    let pair = [codec.encode(-0.4375)?, codec.encode(0.2109375)?];
    entries.push(Entry {
        scheme: "packing",
        key_bits: args.bits,
        op: "pack+unpack",
        variant: "2 fixed-point slots (g, h)",
        ops_per_sec_per_core: median_rate(3, budget, || {
            let x = layout.pack(&pair).unwrap();
            std::hint::black_box(layout.unpack(&x, 2));
        }),
        target: None,
    });
    let per_pack = layout.ciphertexts_per_pack(2);
    let bins: Vec<_> = (0..per_pack)
        .map(|i| pk.encrypt(&Integer::from(i), &mut rng).unwrap())
        .collect();
    entries.push(Entry {
        scheme: "packing",
        key_bits: args.bits,
        op: "pack ciphertexts",
        variant: if per_pack == 12 {
            "12 (g,h) bins into one Paillier ciphertext"
        } else {
            "(g,h) bins into one Paillier ciphertext"
        },
        ops_per_sec_per_core: median_rate(3, budget, || {
            std::hint::black_box(layout.pack_ciphertexts(pk, &bins, 2).unwrap());
        }),
        target: None,
    });

    log("measuring Ristretto255...");
    let key = Ristretto255::random_key(&mut rng);
    let mut counter = 0u64;
    entries.push(Entry {
        scheme: "ristretto255",
        key_bits: 255,
        op: "hash to group",
        variant: "SHA-512 + one-way map (RFC 9496)",
        ops_per_sec_per_core: median_rate(3, budget, || {
            counter += 1;
            std::hint::black_box(Ristretto255::hash_to_group(&counter.to_le_bytes()));
        }),
        target: None,
    });
    entries.push(Entry {
        scheme: "ristretto255",
        key_bits: 255,
        op: "hash+mul+compress",
        variant: "blind one id",
        ops_per_sec_per_core: median_rate(3, budget, || {
            counter += 1;
            std::hint::black_box(Ristretto255::blind(&key, &counter.to_le_bytes()));
        }),
        target: None,
    });
    let element = Ristretto255::blind(&key, b"element");
    entries.push(Entry {
        scheme: "ristretto255",
        key_bits: 255,
        op: "decompress+mul+compress",
        variant: "re-blind a peer's element",
        ops_per_sec_per_core: median_rate(3, budget, || {
            std::hint::black_box(Ristretto255::reblind(&key, &element));
        }),
        target: None,
    });

    // The GM suite's group, measured the same way right after Ristretto255.
    log("measuring SM2 with SM3...");
    let key = Sm2Sm3::random_key(&mut rng);
    entries.push(Entry {
        scheme: "sm2",
        key_bits: 256,
        op: "hash to group",
        variant: "RFC 9380: SM3 expand + 2 SSWU maps",
        ops_per_sec_per_core: median_rate(3, budget, || {
            counter += 1;
            std::hint::black_box(Sm2Sm3::hash_to_curve(&counter.to_le_bytes()));
        }),
        target: None,
    });
    entries.push(Entry {
        scheme: "sm2",
        key_bits: 256,
        op: "hash+mul+compress",
        variant: "blind one id",
        ops_per_sec_per_core: median_rate(3, budget, || {
            counter += 1;
            std::hint::black_box(Sm2Sm3::blind(&key, &counter.to_le_bytes()));
        }),
        target: None,
    });
    let element = Sm2Sm3::blind(&key, b"element");
    entries.push(Entry {
        scheme: "sm2",
        key_bits: 256,
        op: "decompress+mul+compress",
        variant: "re-blind a peer's element",
        ops_per_sec_per_core: median_rate(3, budget, || {
            std::hint::black_box(Sm2Sm3::reblind(&key, &element));
        }),
        target: None,
    });

    // SM4-GCM at rest (`[crypto] encrypt_at_rest`): one 64 KiB record sealed or opened, the
    // unit a node streams its model files in; MB/s = rate × 64 KiB.
    log("measuring SM4-GCM at rest...");
    let at_rest_key = ferry_crypto::at_rest::AtRestKey::from_bytes([7; 16]);
    let record = vec![0x5au8; ferry_crypto::at_rest::RECORD_BYTES];
    entries.push(Entry {
        scheme: "sm4-gcm",
        key_bits: 128,
        op: "encrypt 64 KiB record",
        variant: "at rest: key per file, STREAM nonces",
        ops_per_sec_per_core: median_rate(3, budget, || {
            std::hint::black_box(ferry_crypto::at_rest::encrypt_bytes(
                &at_rest_key,
                &record,
                &mut rng,
            ));
        }),
        target: None,
    });
    let sealed = ferry_crypto::at_rest::encrypt_bytes(&at_rest_key, &record, &mut rng);
    entries.push(Entry {
        scheme: "sm4-gcm",
        key_bits: 128,
        op: "decrypt 64 KiB record",
        variant: "authenticated before use",
        ops_per_sec_per_core: median_rate(3, budget, || {
            std::hint::black_box(
                ferry_crypto::at_rest::decrypt_bytes(&at_rest_key, &sealed)
                    .expect("a record this run sealed opens"),
            );
        }),
        target: None,
    });

    let (m1, m2, k) = workload();
    let report = Report {
        machine,
        arith_backend: backend.name(),
        arithmetic: Arithmetic::for_modulus(n2.significant_bits(), backend),
        workload: Workload {
            plaintext: m1.to_string(),
            plaintext2: m2.to_string(),
            scalar: k.to_string(),
        },
        entries,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

/// Encrypt / decrypt / add / scalar-mul rates of one scheme.
fn scheme_rates<S: HeSecretKey>(
    sk: &S,
    scheme: &'static str,
    bits: u32,
    budget: f64,
    rng: &mut ChaCha20Rng,
    entries: &mut Vec<Entry>,
    targets: [f64; 3],
) {
    // The foundation issue's targets are for 2048-bit keys only.
    let targets = targets.map(|t| (bits == 2048).then_some(t));
    let pk = sk.public();
    let (m, m2, k) = workload();
    let c1 = pk.encrypt(&m, rng).expect("in range");
    let c2 = pk.encrypt(&m2, rng).expect("in range");
    let mut push = |op, variant, rate, target| {
        entries.push(Entry {
            scheme,
            key_bits: bits,
            op,
            variant,
            ops_per_sec_per_core: rate,
            target,
        })
    };
    push(
        "encrypt",
        "public key (fixed-base randomizer)",
        median_rate(3, budget, || {
            std::hint::black_box(pk.encrypt(&m, rng).unwrap());
        }),
        targets[0],
    );
    push(
        "encrypt",
        "key owner (CRT)",
        median_rate(3, budget, || {
            std::hint::black_box(sk.encrypt(&m, rng).unwrap());
        }),
        None,
    );
    push(
        "decrypt",
        "CRT",
        median_rate(3, budget, || {
            std::hint::black_box(sk.decrypt(&c1));
        }),
        targets[1],
    );
    let mut acc = c1.clone();
    push(
        "add",
        "ciphertext + ciphertext",
        median_rate(3, budget, || pk.add_assign(&mut acc, &c2)),
        targets[2],
    );
    push(
        "add",
        "ciphertext + plaintext",
        median_rate(3, budget, || {
            std::hint::black_box(pk.add_plain(&c1, &m).unwrap());
        }),
        None,
    );
    push(
        "scalar-mul",
        "64-bit scalar",
        median_rate(3, budget, || {
            std::hint::black_box(pk.mul_plain(&c1, &k));
        }),
        None,
    );
}

fn print_table(report: &Report) {
    println!("ferry bench crypto — ops/s on one core (median of 3 timed runs)");
    println!("{}", report.machine.render());
    println!("{} (Paillier's n²)", report.arithmetic.render());
    println!(
        "baselines   textbook Paillier encryption and GMP multiply + divide, measured in this run"
    );
    if let Some(e) = report.entries.first()
        && e.key_bits < 2048
    {
        println!("{}", insecure_key_warning(e.key_bits));
    }
    println!(
        "targets     the foundation issue's goals for 2048-bit keys (goals, not measurements)"
    );
    println!();
    println!(
        "{:<13} {:>5}  {:<24} {:<44} {:>14} {:>10}",
        "scheme", "bits", "operation", "variant", "ops/s/core", "target"
    );
    for e in &report.entries {
        let rate = if e.op == "keygen" {
            format!("{:.2} s", 1.0 / e.ops_per_sec_per_core)
        } else {
            format_rate(e.ops_per_sec_per_core)
        };
        let target = e
            .target
            .map(|t| format!("≥ {}", format_rate(t)))
            .unwrap_or_default();
        println!(
            "{:<13} {:>5}  {:<24} {:<44} {:>14} {:>10}",
            e.scheme, e.key_bits, e.op, e.variant, rate, target
        );
    }
}

fn format_rate(r: f64) -> String {
    if r >= 100_000.0 {
        format!("{:.0}k", r / 1000.0)
    } else if r >= 10_000.0 {
        format!("{:.1}k", r / 1000.0)
    } else {
        format!("{r:.0}")
    }
}
