use super::*;
use proptest::prelude::*;
use rug::integer::Order;
use rug::ops::RemRounding;

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

fn backends() -> Vec<Backend> {
    vec![Backend::Gmp]
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
            prop_assert_eq!(mm.to_integer(&mm.pow(&b, &exp)), expected.clone());
            let table = FixedBaseTable::new(&mm, &b, 320, 5);
            prop_assert_eq!(mm.to_integer(&table.pow(&mm, &exp)), expected.clone());
        }
    }

    #[test]
    fn negative_and_oversized_inputs_are_reduced(mw in prop::collection::vec(any::<u64>(), 1..10),
                                                 xw in prop::collection::vec(any::<u64>(), 1..30),
                                                 neg in any::<bool>()) {
        let m = odd_modulus(&mw);
        let mut x = int_from_words(&xw);
        if neg { x = -x; }
        let mm = MontModulus::new(&m).unwrap();
        prop_assert_eq!(mm.to_integer(&mm.to_residue(&x)), x.rem_euc(&m));
    }
}

#[test]
fn inverse_exists_only_for_units() {
    let m = Integer::from(3 * 5 * 7);
    let mm = MontModulus::new(&m).unwrap();
    let inv = mm.inverse(&mm.to_residue(&Integer::from(2))).unwrap();
    assert_eq!(mm.to_integer(&inv), 53); // 2 * 53 = 106 = 105 + 1
    assert!(mm.inverse(&mm.to_residue(&Integer::from(21))).is_none());
}

#[test]
fn even_or_trivial_moduli_are_rejected() {
    assert_eq!(MontModulus::new(&Integer::from(10)).unwrap_err(), ArithError::BadModulus);
    assert_eq!(MontModulus::new(&Integer::from(1)).unwrap_err(), ArithError::BadModulus);
    assert_eq!(MontModulus::new(&Integer::from(-7)).unwrap_err(), ArithError::BadModulus);
}
