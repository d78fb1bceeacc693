//! Property tests for every homomorphic identity of both schemes, on small keys (the code path
//! is the same as for 2048-bit keys; only the sizes differ).

use ferry_crypto::encoding::{EncodingError, FixedPoint, FixedPointCipher};
use ferry_crypto::packing::PackingLayout;
use ferry_crypto::wire::WireError;
use ferry_crypto::{HePublicKey, HeSecretKey, OuSecretKey, PaillierSecretKey, Randomizer};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rug::Integer;
use rug::integer::Order;
use std::sync::OnceLock;

fn paillier() -> &'static PaillierSecretKey {
    static KEY: OnceLock<PaillierSecretKey> = OnceLock::new();
    KEY.get_or_init(|| {
        PaillierSecretKey::generate(512, &mut ChaCha20Rng::seed_from_u64(1)).unwrap()
    })
}

fn ou() -> &'static OuSecretKey {
    static KEY: OnceLock<OuSecretKey> = OnceLock::new();
    KEY.get_or_init(|| OuSecretKey::generate(768, &mut ChaCha20Rng::seed_from_u64(2)).unwrap())
}

/// A signed integer of up to `max_bits` bits, biased towards the extremes of the range.
fn signed_int(max_bits: u32) -> impl Strategy<Value = Integer> {
    let words = max_bits.div_ceil(64) as usize;
    (
        prop::collection::vec(any::<u64>(), words),
        0..=max_bits,
        any::<bool>(),
        0u8..8,
    )
        .prop_map(move |(w, bits, neg, shape)| {
            let mut v = Integer::from_digits(&w, Order::Lsf);
            let bits = if shape == 0 { max_bits } else { bits };
            v.keep_bits_mut(bits);
            if shape == 1 {
                // The largest magnitude the key accepts: 2^max_bits - 1.
                v = (Integer::from(1) << max_bits) - 1u32;
            }
            if neg { -v } else { v }
        })
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// The homomorphic identities, checked for one scheme.
fn check_identities<S: HeSecretKey>(
    sk: &S,
    a: &Integer,
    b: &Integer,
    k: &Integer,
    seed: u64,
) -> Result<(), TestCaseError> {
    let pk = sk.public();
    let mut r = rng(seed);
    let cap = pk.plaintext_bits();
    let ea = pk.encrypt(a, &mut r).unwrap();
    let eb = sk.encrypt(b, &mut r).unwrap();
    prop_assert_eq!(&sk.decrypt(&ea), a, "public-key encryption round trip");
    prop_assert_eq!(&sk.decrypt(&eb), b, "owner (CRT) encryption round trip");

    let sum = Integer::from(a + b);
    if sum.significant_bits() <= cap {
        prop_assert_eq!(sk.decrypt(&pk.add(&ea, &eb)), sum.clone(), "E(a)+E(b)");
        let mut acc = ea.clone();
        pk.add_assign(&mut acc, &eb);
        prop_assert_eq!(sk.decrypt(&acc), sum.clone(), "add_assign");
        prop_assert_eq!(sk.decrypt(&pk.add_plain(&ea, b).unwrap()), sum, "E(a)+b");
    }
    let diff = Integer::from(a - b);
    if diff.significant_bits() <= cap {
        prop_assert_eq!(sk.decrypt(&pk.sub(&ea, &eb)), diff, "E(a)-E(b)");
    }
    prop_assert_eq!(sk.decrypt(&pk.neg(&ea)), Integer::from(-a), "-E(a)");
    let prod = Integer::from(a * k);
    if prod.significant_bits() <= cap {
        prop_assert_eq!(sk.decrypt(&pk.mul_plain(&ea, k)), prod, "E(a)*k");
    }
    let fresh = pk.rerandomize(&ea, &mut r);
    prop_assert_eq!(
        &sk.decrypt(&fresh),
        a,
        "re-randomisation keeps the plaintext"
    );
    let zero = pk.zero();
    prop_assert_eq!(
        sk.decrypt(&pk.add(&zero, &ea)),
        a.clone(),
        "zero is the identity"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn paillier_identities(a in signed_int(510), b in signed_int(510), k in signed_int(70), seed in any::<u64>()) {
        check_identities(paillier(), &a, &b, &k, seed)?;
    }

    #[test]
    fn ou_identities(a in signed_int(254), b in signed_int(254), k in signed_int(40), seed in any::<u64>()) {
        check_identities(ou(), &a, &b, &k, seed)?;
    }

    #[test]
    fn paillier_randomizers_all_decrypt(m in signed_int(510), seed in any::<u64>()) {
        let sk = paillier();
        for mode in [Randomizer::ShortExponent, Randomizer::FullExponent, Randomizer::Textbook] {
            let pk = sk.public().with_randomizer(mode);
            let c = pk.encrypt(&m, &mut rng(seed)).unwrap();
            prop_assert_eq!(sk.decrypt(&c), m.clone(), "{:?}", mode);
        }
    }

    #[test]
    fn shift_left_multiplies_by_power_of_two(m in signed_int(200), shift in 0u32..200, seed in any::<u64>()) {
        let sk = paillier();
        let pk = sk.public();
        let c = pk.encrypt(&m, &mut rng(seed)).unwrap();
        prop_assert_eq!(sk.decrypt(&pk.shift_left(&c, shift)), Integer::from(&m << shift));
        let sk = ou();
        let pk = sk.public();
        let small = Integer::from(&m >> 100u32);
        let c = pk.encrypt(&small, &mut rng(seed)).unwrap();
        let shift = shift % 150;
        prop_assert_eq!(sk.decrypt(&pk.shift_left(&c, shift)), Integer::from(&small << shift));
    }

    #[test]
    fn fixed_point_round_trip(x in prop::num::f64::NORMAL | prop::num::f64::ZERO | prop::num::f64::SUBNORMAL, frac in 0u32..60) {
        let fp = FixedPoint::new(frac);
        let decoded = fp.decode(&fp.encode(x).unwrap());
        // Error bound: half a unit in the last fixed-point place, or f64's own rounding.
        let tol = fp.precision().max(x.abs() * f64::EPSILON);
        prop_assert!((decoded - x).abs() <= tol, "{} -> {} (tol {})", x, decoded, tol);
    }

    #[test]
    fn encrypted_fixed_point_sums_are_exact(xs in prop::collection::vec(-1e6f64..1e6, 1..20), k in -100.0f64..100.0, seed in any::<u64>()) {
        let sk = paillier();
        let fpc = FixedPointCipher::new(sk.public().clone(), FixedPoint::default());
        let mut r = rng(seed);
        let enc = fpc.encrypt_many(&xs, &mut r).unwrap();
        let total = fpc.sum(&enc).unwrap().unwrap();
        let expected: f64 = xs.iter().map(|&x| fpc.codec.decode(&fpc.codec.encode(x).unwrap())).sum();
        prop_assert!((fpc.decrypt(sk, &total) - expected).abs() <= 1e-6);
        let scaled = fpc.mul_plain(&enc[0], k).unwrap();
        prop_assert_eq!(scaled.scale, 2);
        prop_assert!((fpc.decrypt(sk, &scaled) - xs[0] * k).abs() <= 1e-6 * (1.0 + xs[0].abs()));
        prop_assert!(matches!(fpc.add(&scaled, &enc[0]), Err(EncodingError::ScaleMismatch(2, 1))));
    }

    #[test]
    fn packing_round_trip_and_slot_independence(
        a in prop::collection::vec(-(1i64 << 40)..(1i64 << 40), 1..6),
        b in prop::collection::vec(-(1i64 << 40)..(1i64 << 40), 1..6),
        seed in any::<u64>(),
    ) {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let ai: Vec<Integer> = a.iter().map(|&v| Integer::from(v)).collect();
        let bi: Vec<Integer> = b.iter().map(|&v| Integer::from(v)).collect();
        for plaintext_bits in [ou().public().plaintext_bits(), paillier().public().plaintext_bits()] {
            let layout = PackingLayout::new(plaintext_bits, 41, 2).unwrap();
            prop_assume!(layout.slots() >= n);
            let pa = layout.pack(&ai).unwrap();
            prop_assert_eq!(layout.unpack(&pa, n), ai.clone());
            // Homomorphic addition of packed ciphertexts adds slot by slot.
            let sk = ou();
            if plaintext_bits == sk.public().plaintext_bits() {
                let pk = sk.public();
                let mut r = rng(seed);
                let ca = pk.encrypt(&pa, &mut r).unwrap();
                let cb = pk.encrypt(&layout.pack(&bi).unwrap(), &mut r).unwrap();
                let sums = layout.unpack(&sk.decrypt(&pk.add(&ca, &cb)), n);
                let expected: Vec<Integer> = a.iter().zip(b).map(|(x, y)| Integer::from(x + y)).collect();
                prop_assert_eq!(sums, expected);
            }
        }
    }

    #[test]
    fn public_key_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = ferry_crypto::PaillierPublicKey::from_bytes(&bytes);
        let _ = ferry_crypto::OuPublicKey::from_bytes(&bytes);
    }

    #[test]
    fn truncated_or_extended_keys_are_rejected(cut in 1usize..64, extra in prop::collection::vec(any::<u8>(), 1..16)) {
        let bytes = paillier().public().to_bytes();
        let cut = cut.min(bytes.len());
        prop_assert!(ferry_crypto::PaillierPublicKey::from_bytes(&bytes[..bytes.len() - cut]).is_err());
        let mut longer = bytes.clone();
        longer.extend_from_slice(&extra);
        prop_assert_eq!(
            ferry_crypto::PaillierPublicKey::from_bytes(&longer).unwrap_err(),
            WireError::TrailingBytes(extra.len())
        );
    }
}

#[test]
fn plaintexts_outside_the_capacity_are_refused() {
    let sk = ou();
    let pk = sk.public();
    let too_big = Integer::from(1) << pk.plaintext_bits();
    assert!(pk.encrypt(&too_big, &mut rng(0)).is_err());
    assert!(pk.encrypt(&Integer::from(-&too_big), &mut rng(0)).is_err());
    let edge = Integer::from(&too_big - 1u32);
    let c = pk.encrypt(&edge, &mut rng(0)).unwrap();
    assert_eq!(sk.decrypt(&c), edge);
}

#[test]
fn encoded_sums_that_would_overflow_are_errors_not_wrong_numbers() {
    let sk = ou();
    let fpc = FixedPointCipher::new(sk.public().clone(), FixedPoint::new(40));
    let mut r = rng(9);
    // 2^200 * 2^40 = 2^240 < 2^254 fits; squaring it does not.
    let big = fpc.encrypt(2f64.powi(200), &mut r).unwrap();
    assert!(matches!(
        fpc.mul_plain(&big, 2f64.powi(200)),
        Err(EncodingError::Overflow { .. })
    ));
    let mut acc = big.clone();
    let mut doublings = 0;
    loop {
        match fpc.add(&acc, &acc) {
            Ok(next) => {
                acc = next;
                doublings += 1;
            }
            Err(EncodingError::Overflow { capacity, .. }) => {
                assert_eq!(capacity, 254);
                break;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    // 2^241 doubled 12 times is 2^253 < 2^254; the 13th doubling would reach 2^254.
    assert_eq!(doublings, 12);
    assert_eq!(fpc.decrypt(sk, &acc), 2f64.powi(212));
    assert!(fpc.encrypt(f64::NAN, &mut r).is_err());
    assert!(fpc.encrypt(f64::INFINITY, &mut r).is_err());
}

#[test]
fn textbook_known_answer() {
    // Small fixed primes (both ≡ 3 mod 4) give a reproducible key; the expected ciphertext is
    // computed independently as g^m · r^n mod n² with a general modular exponentiation.
    let p = Integer::from_str_radix("f7e75fdc469067ffdc4e847c51f452df", 16)
        .unwrap()
        .next_prime();
    let p = find_blum_prime(p);
    let q =
        find_blum_prime(Integer::from_str_radix("e85dbb4ae8ef3d57b51e2b6e3e4c0d63", 16).unwrap());
    let sk = PaillierSecretKey::from_primes(&p, &q, None).unwrap();
    let pk = sk.public();
    let n = Integer::from(&p * &q);
    let n2 = Integer::from(n.square_ref());
    let g = Integer::from(&n + 1u32);
    let m = Integer::from(123_456_789_012_345u64);
    let r = Integer::from(0xdead_beef_cafe_f00du64);
    let expected = Integer::from(g.pow_mod_ref(&m, &n2).unwrap())
        * Integer::from(r.pow_mod_ref(&n, &n2).unwrap())
        % &n2;
    let c = pk.encrypt_with_r(&m, &r);
    assert_eq!(pk.ciphertext_value(&c), expected);
    assert_eq!(sk.decrypt(&c), m);
    assert_eq!(sk.decrypt(&pk.encrypt_with_r(&Integer::from(-5), &r)), -5);
}

fn find_blum_prime(mut x: Integer) -> Integer {
    loop {
        x = x.next_prime();
        if Integer::from(&x % 4u32) == 3 {
            return x;
        }
    }
}

#[test]
fn ciphertext_batches_round_trip_and_reject_bad_input() {
    let sk = paillier();
    let pk = sk.public();
    let mut r = rng(11);
    let values: Vec<Integer> = (-3..7).map(Integer::from).collect();
    let cts = pk.encrypt_many(&values, &mut r).unwrap();
    let batch = pk.encode_batch(&cts);
    assert_eq!(batch.len(), values.len());
    let back = pk.decode_batch(&batch).unwrap();
    assert_eq!(sk.decrypt_many(&back), values);

    // Through serde (bincode-style byte transport is exercised with serde_json here).
    let json = serde_json::to_string(&batch).unwrap();
    let parsed: ferry_crypto::wire::CiphertextBatch = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed, batch);

    let mut truncated = batch.clone();
    truncated.data.pop();
    assert!(matches!(
        pk.decode_batch(&truncated),
        Err(WireError::Truncated { .. })
    ));

    let mut wrong_key = batch.clone();
    wrong_key.key_fingerprint[0] ^= 1;
    assert!(matches!(
        pk.decode_batch(&wrong_key),
        Err(WireError::KeyMismatch { .. })
    ));

    let mut wrong_version = batch.clone();
    wrong_version.version = 99;
    assert!(matches!(
        pk.decode_batch(&wrong_version),
        Err(WireError::UnsupportedVersion { found: 99, .. })
    ));

    let mut zero = batch.clone();
    let w = pk.ciphertext_bytes();
    zero.data[w..2 * w].fill(0);
    assert_eq!(
        pk.decode_batch(&zero).unwrap_err(),
        WireError::InvalidCiphertext { index: 1 }
    );

    let mut too_big = batch.clone();
    too_big.data[..w].fill(0xff);
    assert_eq!(
        pk.decode_batch(&too_big).unwrap_err(),
        WireError::InvalidCiphertext { index: 0 }
    );

    let ou_pk = ou().public();
    assert!(matches!(
        ou_pk.decode_batch(&batch),
        Err(WireError::WrongScheme { .. })
    ));
}

#[test]
fn public_keys_round_trip_through_bytes_and_serde() {
    let pk = paillier().public();
    assert_eq!(
        &ferry_crypto::PaillierPublicKey::from_bytes(&pk.to_bytes()).unwrap(),
        pk
    );
    let json = serde_json::to_vec(pk).unwrap();
    let back: ferry_crypto::PaillierPublicKey = serde_json::from_slice(&json).unwrap();
    assert_eq!(back.fingerprint(), pk.fingerprint());
    let ou_pk = ou().public();
    assert_eq!(
        &ferry_crypto::OuPublicKey::from_bytes(&ou_pk.to_bytes()).unwrap(),
        ou_pk
    );
    assert!(matches!(
        ferry_crypto::OuPublicKey::from_bytes(&pk.to_bytes()),
        Err(WireError::WrongScheme { .. })
    ));
}

#[test]
fn packed_ciphertexts_of_sums_unpack_per_slot() {
    // Two-level packing as SecureBoost uses it: (g, h) pairs summed into bins, bins packed.
    let sk = paillier();
    let pk = sk.public();
    let mut r = rng(5);
    let terms = 50u64;
    let layout = PackingLayout::new(pk.plaintext_bits(), 30, terms).unwrap();
    let pairs: Vec<(i64, i64)> = (0..terms as i64)
        .map(|i| (i * 1000 - 20_000, i * 7 + 1))
        .collect();
    let per_sample: Vec<Integer> = pairs
        .iter()
        .map(|&(g, h)| layout.pack(&[Integer::from(g), Integer::from(h)]).unwrap())
        .collect();
    let enc = pk.encrypt_many(&per_sample, &mut r).unwrap();
    // Bin j sums the samples with i % 3 == j.
    let bins: Vec<_> = (0..3)
        .map(|j| {
            let mut acc = pk.zero();
            for (i, c) in enc.iter().enumerate() {
                if i % 3 == j {
                    pk.add_assign(&mut acc, c);
                }
            }
            acc
        })
        .collect();
    let packed = layout.pack_ciphertexts(pk, &bins, 2).unwrap();
    let slots = layout.unpack(&sk.decrypt(&packed), 6);
    for j in 0..3 {
        let g: i64 = pairs
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 == j)
            .map(|(_, p)| p.0)
            .sum();
        let h: i64 = pairs
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 == j)
            .map(|(_, p)| p.1)
            .sum();
        assert_eq!(slots[2 * j], g);
        assert_eq!(slots[2 * j + 1], h);
    }
    assert!(
        layout.pack(&[Integer::from(1) << 31]).is_err(),
        "values wider than the slot are refused"
    );
}

#[test]
fn key_generation_refuses_bad_sizes_and_hits_exact_sizes() {
    let mut r = rng(3);
    assert!(PaillierSecretKey::generate(100, &mut r).is_err());
    assert!(PaillierSecretKey::generate(513, &mut r).is_err());
    let sk = PaillierSecretKey::generate(640, &mut r).unwrap();
    assert_eq!(sk.public().key_bits(), 640);
    let (p, q) = sk.primes();
    assert_eq!(Integer::from(p % 4u32), 3);
    assert_eq!(Integer::from(q % 4u32), 3);
    let ou = OuSecretKey::generate(600, &mut r).unwrap();
    assert_eq!(ou.public().n().significant_bits(), 600);
    assert_eq!(ou.public().plaintext_bits(), 198);
}
