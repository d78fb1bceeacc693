use super::*;
use proptest::prelude::*;
use rug::integer::Order;
use rug::ops::RemRounding;
use rug::rand::RandState;

fn int_from_words(words: &[u64]) -> Integer {
    Integer::from_digits(words, Order::Lsf)
}

fn odd_modulus(words: &[u64]) -> Integer {
    let mut m = int_from_words(words);
    m.set_bit(0, true);
    let top = (words.len() * 64 - 1) as u32;
    m.set_bit(top, true);
    m
}

/// An odd modulus of exactly `bits` bits whose other bits come from `words` (repeated).
fn odd_modulus_of_bits(bits: u32, words: &[u64]) -> Integer {
    let needed = bits.div_ceil(64) as usize;
    let w: Vec<u64> = words.iter().copied().cycle().take(needed).collect();
    let mut m = int_from_words(&w);
    m.keep_bits_mut(bits);
    m.set_bit(0, true);
    m.set_bit(bits - 1, true);
    m
}

/// Every backend this CPU can run: each property below is checked for all of them.
fn backends() -> Vec<Backend> {
    Backend::available()
}

/// The backends that can prepare a modulus of `bits` bits here.
fn backends_for(bits: u32) -> Vec<Backend> {
    backends()
        .into_iter()
        .filter(|b| b.supports(bits))
        .collect()
}

/// Sizes used by the schemes (OU mod q, OU mod p², Paillier-2048 CRT and n², Paillier-3072)
/// plus a few awkward ones around limb and chunk boundaries.
const SIZES: [u32; 16] = [
    2, 3, 64, 65, 414, 415, 416, 512, 683, 1024, 1366, 2048, 2078, 3072, 4096, 6144,
];

fn edge_values(m: &Integer) -> Vec<Integer> {
    let mut v = vec![
        Integer::new(),
        Integer::from(1),
        Integer::from(2),
        Integer::from(m - 1u32),
        Integer::from(m - 2u32),
        m.clone(),
        Integer::from(m + 1u32),
        Integer::from(-1),
        Integer::from(m * 3u32) + 5u32,
        Integer::from(m >> 1),
    ];
    // All-ones patterns exercise the carry/borrow propagation paths.
    let bits = m.significant_bits();
    v.push(Integer::from(Integer::u_pow_u(2, bits - 1)) - 1u32);
    v.push(Integer::from(Integer::u_pow_u(2, bits / 2)) - 1u32);
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mul_matches_integer_arithmetic(mw in prop::collection::vec(any::<u64>(), 1..40),
                                      aw in prop::collection::vec(any::<u64>(), 1..40),
                                      bw in prop::collection::vec(any::<u64>(), 1..40)) {
        let m = odd_modulus(&mw);
        let a = int_from_words(&aw);
        let b = int_from_words(&bw);
        let expected = Integer::from(&a * &b).rem_euc(&m);
        for backend in backends() {
            let mm = MontModulus::with_backend(&m, backend).unwrap();
            let prod = mm.mul(&mm.to_residue(&a), &mm.to_residue(&b));
            prop_assert_eq!(mm.to_integer(&prod), expected.clone(), "backend {:?}", backend);
            let mut sq = mm.to_residue(&a);
            mm.square_assign(&mut sq);
            prop_assert_eq!(mm.to_integer(&sq), Integer::from(a.square_ref()).rem_euc(&m));
        }
    }

    #[test]
    fn mul_at_scheme_sizes(size in prop::sample::select(SIZES.to_vec()),
                           mw in prop::collection::vec(any::<u64>(), 1..8),
                           aw in prop::collection::vec(any::<u64>(), 1..100),
                           bw in prop::collection::vec(any::<u64>(), 1..100)) {
        let m = odd_modulus_of_bits(size, &mw);
        prop_assert_eq!(m.significant_bits(), size);
        let a = int_from_words(&aw);
        let b = int_from_words(&bw);
        for backend in backends_for(size) {
            let mm = MontModulus::with_backend(&m, backend).unwrap();
            let (ra, rb) = (mm.to_residue(&a), mm.to_residue(&b));
            let expected = Integer::from(&a * &b).rem_euc(&m);
            prop_assert_eq!(mm.to_integer(&mm.mul(&ra, &rb)), expected.clone(), "{:?} {} bits", backend, size);
            let mut out = mm.one();
            mm.mul_into(&mut out, &ra, &rb);
            prop_assert_eq!(mm.to_integer(&out), expected.clone());
            // Value-based equality within one modulus.
            prop_assert_eq!(&out, &mm.to_residue(&expected));
            prop_assert_eq!(mm.to_integer(&mm.square(&ra)), Integer::from(a.square_ref()).rem_euc(&m));
        }
    }

    #[test]
    fn edge_values_at_scheme_sizes(size in prop::sample::select(SIZES.to_vec()),
                                   mw in prop::collection::vec(any::<u64>(), 1..8)) {
        let m = odd_modulus_of_bits(size, &mw);
        let values = edge_values(&m);
        for backend in backends_for(size) {
            let mm = MontModulus::with_backend(&m, backend).unwrap();
            let rs: Vec<Residue> = values.iter().map(|x| mm.to_residue(x)).collect();
            for (x, rx) in values.iter().zip(&rs) {
                prop_assert_eq!(mm.to_integer(rx), x.clone().rem_euc(&m), "{:?} {} bits", backend, size);
                for (y, ry) in values.iter().zip(&rs) {
                    let expected = Integer::from(x * y).rem_euc(&m);
                    prop_assert_eq!(mm.to_integer(&mm.mul(rx, ry)), expected, "{:?} {} bits: {} * {}", backend, size, x, y);
                }
            }
            let minus_one = mm.to_residue(&Integer::from(-1));
            prop_assert_eq!(mm.mul(&minus_one, &minus_one), mm.one());
            prop_assert_eq!(mm.to_residue(&m), mm.to_residue(&Integer::new()));
        }
    }

    #[test]
    fn pow_and_fixed_base_match_pow_mod(mw in prop::collection::vec(any::<u64>(), 1..20),
                                        bw in prop::collection::vec(any::<u64>(), 1..20),
                                        ew in prop::collection::vec(any::<u64>(), 0..5)) {
        let m = odd_modulus(&mw);
        let base = int_from_words(&bw);
        let exp = int_from_words(&ew);
        let expected = Integer::from(base.pow_mod_ref(&exp, &m).unwrap());
        for backend in backends() {
            let mm = MontModulus::with_backend(&m, backend).unwrap();
            let b = mm.to_residue(&base);
            prop_assert_eq!(mm.to_integer(&mm.pow(&b, &exp)), expected.clone(), "backend {:?}", backend);
            let table = FixedBaseTable::new(&mm, &b, 320, 5);
            prop_assert_eq!(mm.to_integer(&table.pow(&mm, &exp)), expected.clone());
        }
    }

    /// Signed-digit fixed-base powers equal `pow_mod` (with the inverse for negative
    /// exponents) on every backend and window, for exponents of both signs: random ones,
    /// packed-like ones (small signed values at slot offsets, whose negative slots make runs
    /// of one bits), all-ones runs, and exponents up to the table's top bit (whose recoding
    /// carries past the last row and takes the unsigned path).
    #[test]
    fn signed_fixed_base_matches_pow_mod(mw in prop::collection::vec(any::<u64>(), 1..12),
                                         bw in prop::collection::vec(any::<u64>(), 1..12),
                                         slots in prop::collection::vec(-(1i64 << 40)..(1i64 << 40), 1..8),
                                         ew in prop::collection::vec(any::<u64>(), 0..5),
                                         ones in 0u32..300,
                                         window in 1u32..=11,
                                         negative in any::<bool>()) {
        let m = odd_modulus(&mw);
        let base = int_from_words(&bw);
        // Base and modulus must be coprime for the inverse table.
        prop_assume!(Integer::from(base.gcd_ref(&m)) == 1);
        let inv = Integer::from(base.invert_ref(&m).unwrap());
        let mut packed = Integer::new();
        for &v in slots.iter().rev() {
            packed <<= 42;
            packed += v;
        }
        let all_ones = (Integer::from(1) << ones) - 1u32;
        let random = int_from_words(&ew);
        let top = (Integer::from(1) << 319u32) + Integer::from(random.keep_bits_ref(319));
        for exp in [packed, all_ones, random, top] {
            let exp = if negative { -exp } else { exp };
            let expected = if exp >= 0 {
                Integer::from(base.pow_mod_ref(&exp, &m).unwrap())
            } else {
                Integer::from(inv.pow_mod_ref(&Integer::from(-&exp), &m).unwrap())
            };
            for backend in backends() {
                let mm = MontModulus::with_backend(&m, backend).unwrap();
                let table = FixedBaseTable::new(&mm, &mm.to_residue(&base), 320, window);
                let inverse = FixedBaseTable::new(&mm, &mm.to_residue(&inv), 320, window);
                prop_assert_eq!(
                    mm.to_integer(&table.pow_signed(&inverse, &mm, &exp)),
                    expected.clone(),
                    "backend {:?}, window {}, exponent {}", backend, window, exp
                );
            }
        }
    }

    #[test]
    fn pow_at_scheme_sizes(size in prop::sample::select(vec![683u32, 1366, 2048, 4096]),
                           mw in prop::collection::vec(any::<u64>(), 1..8),
                           bw in prop::collection::vec(any::<u64>(), 1..64),
                           ew in prop::collection::vec(any::<u64>(), 0..17)) {
        let m = odd_modulus_of_bits(size, &mw);
        let base = int_from_words(&bw);
        let exp = int_from_words(&ew);
        let expected = Integer::from(base.pow_mod_ref(&exp, &m).unwrap());
        for backend in backends_for(size) {
            let mm = MontModulus::with_backend(&m, backend).unwrap();
            let b = mm.to_residue(&base);
            prop_assert_eq!(mm.to_integer(&mm.pow(&b, &exp)), expected.clone(), "{:?} {} bits", backend, size);
        }
    }

    /// Squaring is the product of a residue with itself on every backend (the mpn backend
    /// squares with a separate GMP routine), and exponents on both sides of the mpn backend's
    /// switch to GMP's powm agree with `pow_mod`.
    #[test]
    fn square_equals_mul_and_pow_across_exponent_paths(
        size in prop::sample::select(SIZES.to_vec()),
        mw in prop::collection::vec(any::<u64>(), 1..8),
        aw in prop::collection::vec(any::<u64>(), 1..100),
        exp_bits in prop::sample::select(vec![1u32, 63, 64, 65, mpn::POWM_MIN_EXP_BITS - 1, mpn::POWM_MIN_EXP_BITS, 700]),
        ew in prop::collection::vec(any::<u64>(), 11..12)) {
        let m = odd_modulus_of_bits(size, &mw);
        let a = int_from_words(&aw);
        let mut exp = int_from_words(&ew);
        exp.keep_bits_mut(exp_bits);
        exp.set_bit(exp_bits - 1, true);
        let expected = Integer::from(a.pow_mod_ref(&exp, &m).unwrap());
        for backend in backends_for(size) {
            let mm = MontModulus::with_backend(&m, backend).unwrap();
            let ra = mm.to_residue(&a);
            prop_assert_eq!(mm.square(&ra), mm.mul(&ra, &ra.clone()), "{:?} {} bits", backend, size);
            let mut into = mm.one();
            mm.mul_into(&mut into, &ra, &ra);
            prop_assert_eq!(&into, &mm.square(&ra));
            prop_assert_eq!(mm.to_integer(&mm.pow(&ra, &exp)), expected.clone(), "{:?} {} bits, {}-bit exponent", backend, size, exp_bits);
        }
    }

    #[test]
    fn negative_and_oversized_inputs_are_reduced(mw in prop::collection::vec(any::<u64>(), 1..10),
                                                 xw in prop::collection::vec(any::<u64>(), 1..30),
                                                 neg in any::<bool>()) {
        let m = odd_modulus(&mw);
        let mut x = int_from_words(&xw);
        if neg { x = -x; }
        for backend in backends() {
            let mm = MontModulus::with_backend(&m, backend).unwrap();
            prop_assert_eq!(mm.to_integer(&mm.to_residue(&x)), x.clone().rem_euc(&m));
        }
        let mm = MontModulus::new(&m).unwrap();
        prop_assert_eq!(mm.to_integer(&mm.to_residue(&x)), x.rem_euc(&m));
    }

    /// `mul_to_integer` is `value · k mod m` on every backend, and where a backend has a
    /// Montgomery factor `R` (mpn), `residue_from_montgomery(x·R mod m)` is the residue of `x`
    /// (what OU's owner encryption relies on to skip a conversion).
    #[test]
    fn stored_form_shortcuts_match_conversions(size in prop::sample::select(vec![64u32, 683, 1366, 2048, 4096]),
                                               mw in prop::collection::vec(any::<u64>(), 1..8),
                                               xw in prop::collection::vec(any::<u64>(), 1..70),
                                               kw in prop::collection::vec(any::<u64>(), 1..70)) {
        let m = odd_modulus_of_bits(size, &mw);
        let x = int_from_words(&xw) % &m;
        let k = int_from_words(&kw) % &m;
        let mut saw_factor = false;
        for backend in backends_for(size) {
            let mm = MontModulus::with_backend(&m, backend).unwrap();
            let rx = mm.to_residue(&x);
            prop_assert_eq!(mm.mul_to_integer(&rx, &k), Integer::from(&x * &k) % &m, "{:?}", backend);
            match mm.montgomery_factor() {
                Some(r) => {
                    saw_factor = true;
                    let stored = Integer::from(&x * &r) % &m;
                    prop_assert_eq!(mm.residue_from_montgomery(&stored), Some(rx), "{:?}", backend);
                }
                None => prop_assert_eq!(mm.residue_from_montgomery(&x), None, "{:?}", backend),
            }
        }
        prop_assert!(saw_factor, "the mpn backend runs everywhere and has a factor");
    }

    #[test]
    fn inverse_matches_invert(size in prop::sample::select(vec![64u32, 683, 1366, 2048]),
                              mw in prop::collection::vec(any::<u64>(), 1..8),
                              xw in prop::collection::vec(any::<u64>(), 1..40)) {
        let m = odd_modulus_of_bits(size, &mw);
        let x = int_from_words(&xw);
        for backend in backends_for(size) {
            let mm = MontModulus::with_backend(&m, backend).unwrap();
            let rx = mm.to_residue(&x);
            match x.clone().invert(&m) {
                Ok(inv) => {
                    let r = mm.inverse(&rx).expect("unit has an inverse");
                    prop_assert_eq!(mm.to_integer(&r), inv);
                    prop_assert_eq!(mm.mul(&r, &rx), mm.one());
                }
                Err(_) => prop_assert!(mm.inverse(&rx).is_none()),
            }
        }
    }
}

#[test]
fn inverse_exists_only_for_units() {
    let m = Integer::from(3 * 5 * 7);
    for backend in backends() {
        let mm = MontModulus::with_backend(&m, backend).unwrap();
        let inv = mm.inverse(&mm.to_residue(&Integer::from(2))).unwrap();
        assert_eq!(mm.to_integer(&inv), 53); // 2 * 53 = 106 = 105 + 1
        assert!(mm.inverse(&mm.to_residue(&Integer::from(21))).is_none());
    }
}

#[test]
fn even_or_trivial_moduli_are_rejected() {
    assert_eq!(
        MontModulus::new(&Integer::from(10)).unwrap_err(),
        ArithError::BadModulus
    );
    assert_eq!(
        MontModulus::new(&Integer::from(1)).unwrap_err(),
        ArithError::BadModulus
    );
    assert_eq!(
        MontModulus::new(&Integer::from(-7)).unwrap_err(),
        ArithError::BadModulus
    );
    for backend in Backend::ALL {
        assert_eq!(
            MontModulus::with_backend(&Integer::from(10), backend).unwrap_err(),
            ArithError::BadModulus
        );
    }
}

#[test]
fn backend_selection() {
    let avail = Backend::available();
    assert!(avail.contains(&Backend::Gmp) && avail.contains(&Backend::Portable));
    assert_eq!(avail.contains(&Backend::Ifma), Backend::Ifma.is_available());
    for bits in [64, 683, 1366, 2048, 3072, 4096, 6144, 8192, 16384] {
        let best = Backend::best_for(bits);
        assert!(best.supports(bits), "{best:?} chosen for {bits} bits");
        let fastest = Backend::fastest_for(bits);
        assert!(fastest.supports(bits));
        if Backend::Ifma.is_available() && bits <= 6144 {
            assert_eq!(fastest, Backend::Ifma);
        }
    }
    for b in Backend::ALL {
        assert_eq!(Backend::from_name(b.name()), Some(b));
    }
    // Without IFMA the GMP-assembly Montgomery backend is the choice from 512 to 3072 bits
    // (OU's moduli, Paillier's CRT moduli), GMP's multiply-and-divide elsewhere; with the ADX
    // row it also takes Paillier's n² (4096 and 6144 bits) up to 8192.
    for adx in [false, true] {
        for bits in [683, 1364, 2048, 3072] {
            assert_eq!(Backend::fastest_given(false, adx, bits), Backend::Mpn);
            assert_eq!(Backend::fastest_given(true, adx, bits), Backend::Ifma);
        }
        for bits in [64, 16384] {
            assert_eq!(Backend::fastest_given(false, adx, bits), Backend::Gmp);
        }
        assert_eq!(Backend::fastest_given(true, adx, 4096), Backend::Ifma);
    }
    for bits in [4096, 6144, 8192] {
        assert_eq!(Backend::fastest_given(false, false, bits), Backend::Gmp);
        assert_eq!(Backend::fastest_given(false, true, bits), Backend::Mpn);
    }
    assert_eq!(Backend::fastest_given(true, false, 8192), Backend::Gmp);
    assert_eq!(Backend::fastest_given(true, true, 8192), Backend::Mpn);
    assert_eq!(Override::parse("no-adx"), Some(Override::WithoutIfmaOrAdx));
    assert_eq!(Backend::from_name(" IFMA "), Some(Backend::Ifma));
    assert_eq!(Backend::from_name("avx"), None);
    assert_eq!(Override::parse(" No-IFMA "), Some(Override::WithoutIfma));
    assert_eq!(
        Override::parse("mpn"),
        Some(Override::Backend(Backend::Mpn))
    );
    assert_eq!(Override::parse("avx"), None);
    // Moduli beyond the IFMA kernels' size are refused, never mis-computed.
    let huge = odd_modulus_of_bits(8192, &[0x1234_5678_9abc_def1]);
    assert_eq!(
        MontModulus::with_backend(&huge, Backend::Ifma).unwrap_err(),
        ArithError::BackendUnavailable(Backend::Ifma)
    );
    let mm = MontModulus::new(&huge).unwrap();
    assert!(mm.backend().supports(8192));
}

#[test]
fn fixed_base_rows_fit_the_budget() {
    let wide = FixedBaseTable::WIDE_TABLE_BUDGET_BYTES;
    // IFMA keeps its measured 8-bit rows.
    assert_eq!(
        FixedBaseTable::widths_for(Backend::Ifma, 2048, 256),
        vec![8; 32]
    );
    // Elsewhere the fewest rows that fit, as equal as can be, the wider ones first. OU-2048's
    // 224-bit randomizer in the common budget: 20 rows of 12 and 11 bits (11-bit windows
    // alone took 21 rows).
    assert_eq!(
        FixedBaseTable::widths_for(Backend::Mpn, 2048, 224),
        [vec![12; 4], vec![11; 16]].concat()
    );
    // The key owner's tables modulo p² (twice the budget) and q: 17 rows of 14 and 13 bits.
    let owner = [vec![14; 3], vec![13; 14]].concat();
    assert_eq!(
        FixedBaseTable::widths_within(Backend::Mpn, 1366, 224, 2 * wide),
        owner
    );
    assert_eq!(FixedBaseTable::widths_for(Backend::Mpn, 683, 224), owner);
    // The public key's randomizer table in its own 64 MiB: 16 rows of 14 bits.
    assert_eq!(
        FixedBaseTable::widths_within(Backend::Mpn, 2048, 224, 64 << 20),
        vec![14; 16]
    );
    // Paillier-2048's 224-bit table modulo n²: 22 rows (10-bit windows took 23).
    assert_eq!(
        FixedBaseTable::widths_for(Backend::Mpn, 4096, 224).len(),
        22
    );
    // A budget too small even for 8-bit rows still gets 8-bit rows.
    assert_eq!(
        FixedBaseTable::widths_within(Backend::Mpn, 4096, 1024, 1 << 20),
        vec![8; 128]
    );
    for (bits, exp, budget) in [
        (2048u32, 256u32, wide),
        (2048, 682, wide),
        (2048, 42, wide),
        (2048, 640, wide / 2),
        (4096, 1024, wide),
        (2048, 1024, wide),
        (8192, 4096, wide),
        (683, 224, 1 << 30),
        (683, 5, wide),
    ] {
        let w = FixedBaseTable::widths_within(Backend::Mpn, bits, exp, budget);
        let case = format!("{bits}-bit modulus, {exp}-bit exponents, {budget} bytes: {w:?}");
        assert!(w.iter().sum::<u32>() >= exp, "{case}");
        assert!(
            w.iter()
                .all(|&x| (1..=FixedBaseTable::MAX_WINDOW).contains(&x)),
            "{case}"
        );
        assert!(w.windows(2).all(|p| p[0] >= p[1]), "{case}");
        if FixedBaseTable::table_bytes(bits, &w) > budget {
            assert_eq!(w, vec![8; exp.div_ceil(8) as usize], "{case}");
            continue;
        }
        assert_eq!(w.iter().sum::<u32>(), exp, "{case}");
        assert!(w[0] - w[w.len() - 1] <= 1, "{case}");
        // The fewest rows: one fewer would not fit, or would need a row wider than allowed.
        let fewer = w.len() as u32 - 1;
        assert!(
            fewer == 0
                || exp.div_ceil(fewer) > FixedBaseTable::MAX_WINDOW
                || FixedBaseTable::table_bytes(bits, &balanced_widths(exp, fewer)) > budget,
            "{case}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Tables with rows of different widths (up to one of 14 bits, the widest allowed) give
    /// `pow_mod`'s results on every backend, by unsigned and by signed digits, for random
    /// exponents, all-ones ones, short ones (a fixed-point plaintext) and ones up to the top
    /// row.
    #[test]
    fn mixed_width_tables_match_pow_mod(mw in prop::collection::vec(any::<u64>(), 1..6),
                                        bw in prop::collection::vec(any::<u64>(), 1..6),
                                        narrow in prop::collection::vec(1u32..=9, 1..12),
                                        widest_first in any::<bool>(),
                                        ew in prop::collection::vec(any::<u64>(), 1..3),
                                        short in -(1i64 << 42)..(1i64 << 42),
                                        negative in any::<bool>()) {
        let m = odd_modulus(&mw);
        let base = int_from_words(&bw);
        prop_assume!(Integer::from(base.gcd_ref(&m)) == 1);
        let inv = Integer::from(base.invert_ref(&m).unwrap());
        let widths = if widest_first {
            [vec![FixedBaseTable::MAX_WINDOW], narrow].concat()
        } else {
            narrow
        };
        let bits: u32 = widths.iter().sum();
        let random = int_from_words(&ew).keep_bits(bits);
        let all_ones = (Integer::from(1) << bits) - 1u32;
        let short = Integer::from(short).abs().keep_bits(bits);
        for exp in [random, all_ones, short] {
            let signed = if negative { -exp.clone() } else { exp.clone() };
            let expected = Integer::from(base.pow_mod_ref(&exp, &m).unwrap());
            let expected_signed = if negative {
                Integer::from(inv.pow_mod_ref(&exp, &m).unwrap())
            } else {
                expected.clone()
            };
            for backend in backends() {
                let mm = MontModulus::with_backend(&m, backend).unwrap();
                let table = FixedBaseTable::with_widths(&mm, &mm.to_residue(&base), &widths);
                let inverse = FixedBaseTable::with_widths(&mm, &mm.to_residue(&inv), &widths);
                prop_assert_eq!(table.max_exp_bits(), bits);
                prop_assert_eq!(table.widths(), &widths[..]);
                prop_assert_eq!(
                    mm.to_integer(&table.pow(&mm, &exp)),
                    expected.clone(),
                    "backend {:?}, widths {:?}, exponent {}", backend, widths, exp
                );
                prop_assert_eq!(
                    mm.to_integer(&table.pow_signed(&inverse, &mm, &signed)),
                    expected_signed.clone(),
                    "backend {:?}, widths {:?}, exponent {}", backend, widths, signed
                );
            }
        }
    }
}

#[test]
#[should_panic(expected = "rows of 1..=14 bits")]
fn rows_wider_than_the_limit_are_refused() {
    let m = MontModulus::new(&Integer::from(1_000_003)).unwrap();
    FixedBaseTable::with_widths(&m, &m.one(), &[15]);
}

#[test]
fn residues_are_thread_safe_values() {
    fn residue_traits<T: Clone + Send + Sync + std::fmt::Debug + PartialEq + Eq>() {}
    fn shared_traits<T: Clone + Send + Sync + std::fmt::Debug>() {}
    residue_traits::<Residue>();
    shared_traits::<MontModulus>();
    shared_traits::<FixedBaseTable>();
}

/// Deterministic pseudo-random integer below 2^bits.
fn random_below_bits(rng: &mut RandState<'_>, bits: u32) -> Integer {
    Integer::from(Integer::random_bits(bits, rng))
}

/// Long chains of mixed operations agree across all backends, step by step, and with GMP.
#[test]
fn backends_agree_on_long_chains() {
    let mut rng = RandState::new();
    rng.seed(&Integer::from(0x5eed_f3e7_u64));
    for bits in [683u32, 1366, 2048, 3072, 4096] {
        let mut m = random_below_bits(&mut rng, bits);
        m.set_bit(bits - 1, true);
        m.set_bit(0, true);
        let moduli: Vec<MontModulus> = backends_for(bits)
            .into_iter()
            .map(|b| MontModulus::with_backend(&m, b).unwrap())
            .collect();
        let start = random_below_bits(&mut rng, bits + 7);
        let factors: Vec<Integer> = (0..8).map(|_| random_below_bits(&mut rng, bits)).collect();
        let mut accs: Vec<Residue> = moduli.iter().map(|mm| mm.to_residue(&start)).collect();
        let mut reference = start.clone().rem_euc(&m);
        for step in 0..600u32 {
            let f = &factors[(step as usize * 7 + 3) % factors.len()];
            match step % 5 {
                0 | 3 => {
                    for (mm, acc) in moduli.iter().zip(&mut accs) {
                        mm.mul_assign(acc, &mm.to_residue(f));
                    }
                    reference = Integer::from(&reference * f).rem_euc(&m);
                }
                1 => {
                    for (mm, acc) in moduli.iter().zip(&mut accs) {
                        mm.square_assign(acc);
                    }
                    reference.square_mut();
                    reference = reference.rem_euc(&m);
                }
                2 => {
                    for (mm, acc) in moduli.iter().zip(&mut accs) {
                        let prev = acc.clone();
                        mm.mul_into(acc, &prev, &prev);
                    }
                    reference.square_mut();
                    reference = reference.rem_euc(&m);
                }
                _ => {
                    let e = Integer::from(step * 977 + 1);
                    for (mm, acc) in moduli.iter().zip(&mut accs) {
                        *acc = mm.pow(acc, &e);
                    }
                    reference = reference.pow_mod(&e, &m).unwrap();
                }
            }
            if step % 25 == 0 || step == 599 {
                for (mm, acc) in moduli.iter().zip(&accs) {
                    assert_eq!(
                        mm.to_integer(acc),
                        reference,
                        "{:?} at {bits} bits, step {step}",
                        mm.backend()
                    );
                }
            }
        }
        let results: Vec<Integer> = moduli
            .iter()
            .zip(&accs)
            .map(|(mm, acc)| mm.to_integer(acc))
            .collect();
        assert!(
            results.windows(2).all(|w| w[0] == w[1]),
            "backends disagree at {bits} bits"
        );
    }
}

/// The schemes' main workload: a 2048-bit exponent mod a 4096-bit n² and the default
/// fixed-base table, for every backend.
#[test]
fn paillier_sized_exponentiation() {
    let mut rng = RandState::new();
    rng.seed(&Integer::from(20_480_u32));
    let mut m = random_below_bits(&mut rng, 4096);
    m.set_bit(4095, true);
    m.set_bit(0, true);
    let base = random_below_bits(&mut rng, 4096);
    let exp = random_below_bits(&mut rng, 2048);
    let expected = Integer::from(base.pow_mod_ref(&exp, &m).unwrap());
    for backend in backends_for(4096) {
        let mm = MontModulus::with_backend(&m, backend).unwrap();
        let b = mm.to_residue(&base);
        assert_eq!(mm.to_integer(&mm.pow(&b, &exp)), expected, "{backend:?}");
        let table = mm.fixed_base_table(&b, 2048);
        assert_eq!(
            mm.to_integer(&table.pow(&mm, &exp)),
            expected,
            "{backend:?} table"
        );
    }
}

#[test]
#[should_panic(expected = "residue")]
fn mixing_backends_panics() {
    let m = Integer::from(1_000_003);
    let a = MontModulus::with_backend(&m, Backend::Gmp).unwrap();
    let b = MontModulus::with_backend(&m, Backend::Portable).unwrap();
    let mut x = a.one();
    b.mul_assign(&mut x, &b.one());
}
