//! Montgomery backend on GMP's low-level `mpn` layer: the choice on x86-64 CPUs without
//! AVX-512 IFMA ([`super::Backend::fastest_for`]), for 512- to 8192-bit moduli where the CPU
//! has BMI2 and ADX and 512 to 3072 bits where it has not.
//!
//! Why: [`super::gmp`] reduces every product with a GMP division, and [`super::portable`] is
//! Montgomery in plain Rust whose `u128` inner loop the compiler turns into `mul`/`adc`
//! sequences, slower than GMP's multiply-and-divide at every size measured. GMP's `mpn`
//! routines are hand-written assembly selected at run time for the CPU (gmp-mpfr-sys builds a
//! "fat" library), and `mpn_sqr` is a dedicated squaring, so the products are GMP's.
//! Montgomery's reduction needs no division, only `n` rows, each `q·m` added into the product
//! ([`redc`]). Those rows are the larger half of the cost, and GMP's `mpn_addmul_1` runs them
//! at about 1.8 cycles a word product on the development machine (Zen 4) against 1.25 for
//! its products, so where the CPU has BMI2 and ADX the rows are Ferry's own two-carry-chain
//! assembly ([`super::adx`], [`Rows::Adx`]): a product with its reduction at 2048 bits went
//! from 1.20 to 0.95 µs, and OU-2048 decryption from 6.4k to 8.2k a second.
//!
//! A modulus of `n` 64-bit words uses `R = 2^(64n)`. A residue `x` is stored as `x·R mod m`
//! in `[0, m)` (canonical, so word equality is value equality), `n` words least significant
//! first; `m' = -m⁻¹ mod 2^64`.
//!
//! Exponentiation runs the shared sliding window ([`super::sliding_window_pow`]) on these
//! products, with no conversion out of Montgomery form. Only with GMP's rows do exponents of
//! [`POWM_MIN_EXP_BITS`] or more go to GMP's own `mpz_powm`, whose REDC kernels then beat
//! these rows; with the ADX rows the window is faster at every length measured (OU-2048's
//! 224-bit decryption exponent modulo `p²`: 8.2k against 6.4k a second; Paillier-2048's
//! 1024-bit CRT exponents: 510 against 384 decryptions a second).

use super::{Repr, Residue};
use gmp_mpfr_sys::gmp;
use rug::Integer;
use rug::integer::Order;

/// Runs `f` on a zeroed scratch buffer of `len` words: on the stack up to 256 words (a
/// 4096-bit modulus' double-width product), picked from a few size classes because zeroing
/// costs in proportion to the buffer and a 22-word (OU `p²`) product would otherwise clear
/// 2 KiB for 352 bytes of use; on the heap beyond.
fn with_words<R>(len: usize, f: impl FnOnce(&mut [u64]) -> R) -> R {
    if len <= 48 {
        f(&mut [0u64; 48][..len])
    } else if len <= 64 {
        f(&mut [0u64; 64][..len])
    } else if len <= 128 {
        f(&mut [0u64; 128][..len])
    } else if len <= 256 {
        f(&mut [0u64; 256][..len])
    } else {
        f(&mut vec![0u64; len])
    }
}

/// With GMP's rows ([`Rows::Gmp`]), exponents of at least this many bits go to GMP's
/// `mpz_powm`; shorter ones use the sliding window over this backend's products. Measured in
/// thread CPU time on a 2-core AMD EPYC (Zen 4): for 64-bit exponents the two are level (97
/// against 105 µs at 2048 bits, 366 against 361 µs at 4096); for 256-bit exponents
/// `mpz_powm` is ahead by up to 10 % (375 against 409 µs at 2048 bits), so the switch sits
/// between the two.
pub(crate) const POWM_MIN_EXP_BITS: u32 = 128;

#[derive(Clone, Debug)]
pub(crate) struct MpnModulus {
    /// The modulus as GMP integer (for `mpz_powm` and conversions).
    modulus: Integer,
    m: Vec<u64>,
    /// `-m⁻¹ mod 2^64`.
    minv: u64,
    /// `R mod m` (the residue of 1).
    one: Vec<u64>,
    /// `R² mod m` (multiplying by it enters Montgomery form).
    rr: Vec<u64>,
    rows: Rows,
    /// How many low words of `m` are all ones (`m ≡ -1 mod 2^(64·skip)`), below `n`.
    skip: usize,
    /// What each reduction row multiplies: `(m + 1) / 2^(64·skip)`, `n - skip` words (a copy
    /// of `m` where `skip` is 0, so that [`redc`] has one slice for its rows either way).
    row_m: Vec<u64>,
}

fn to_words(x: &Integer, n: usize) -> Vec<u64> {
    let mut w = x.to_digits::<u64>(Order::Lsf);
    debug_assert!(w.len() <= n);
    w.resize(n, 0);
    w
}

/// How [`redc`] adds its rows `q·m` into the product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rows {
    /// GMP's `mpn_addmul_1`, on any CPU.
    Gmp,
    /// [`super::adx::addmul_row`] (`mulx`/`adcx`/`adox`), where the CPU has BMI2 and ADX.
    Adx,
}

impl Rows {
    /// The faster row this CPU can run.
    pub(crate) fn best() -> Rows {
        if super::adx::available() && !super::adx_disabled_by_env() {
            Rows::Adx
        } else {
            Rows::Gmp
        }
    }
}

/// Montgomery reduction: `out = t·R⁻¹ mod m` (canonical) for `t < m·R`, `t` of `2n` words.
/// `t` is clobbered.
///
/// Row `i` adds `q·m` with `q = t_i·m'` at word `i`, which clears word `i`. Where the low
/// `skip` words of `m` are all ones, `m = M·2^(64·skip) - 1` with `M = row_m`, so `m' = 1`,
/// `q = t_i`, and `t + q·m = (t - q) + q·M·2^(64·skip)`: subtracting `q` clears word `i`
/// with no borrow, and the row is `q·M`, `n - skip` words long, added at word `i + skip`.
/// Ferry's OU keys have such moduli (`skip` = 10 of 32 words at 2048 bits,
/// [`crate::ou`]), which makes the rows 31 % shorter.
#[inline(always)]
fn redc(out: &mut [u64], t: &mut [u64], ring: &MpnModulus) {
    let (m, skip) = (&ring.m[..], ring.skip);
    let n = m.len();
    assert!(out.len() == n && t.len() == 2 * n && ring.row_m.len() == n - skip);
    let len = n as gmp::size_t;
    // Each combination its own loop, with the row kernel, `skip` and `m'` constant inside it
    // (no choice made per row). What measured was inlining all of this into the product's
    // caller ([`Scratch`]): OU decryption had moved by 3-5 % between builds of the same code
    // with whether the compiler inlined the reduction.
    match (ring.rows, skip) {
        (Rows::Gmp, 0) => add_rows(t, &ring.row_m, 0, ring.minv, gmp_row),
        (Rows::Gmp, _) => add_rows(t, &ring.row_m, skip, 1, gmp_row),
        #[cfg(target_arch = "x86_64")]
        (Rows::Adx, 0) => add_rows(t, &ring.row_m, 0, ring.minv, super::adx::addmul_row),
        #[cfg(target_arch = "x86_64")]
        (Rows::Adx, _) => add_rows(t, &ring.row_m, skip, 1, super::adx::addmul_row),
        #[cfg(not(target_arch = "x86_64"))]
        (Rows::Adx, _) => unreachable!("the ADX row exists on x86-64 only"),
    }
    let (lo, hi) = t.split_at(n);
    // SAFETY: `out`, `hi` and `lo` are `n` words each and `out` is a distinct buffer.
    let carry = unsafe { gmp::mpn_add_n(out.as_mut_ptr(), hi.as_ptr(), lo.as_ptr(), len) };
    // (t + q·m) / R < (m·R + R·m) / R = 2m: at most one subtraction makes it canonical.
    // SAFETY: `out` and `m` are `n` words each.
    if carry != 0 || unsafe { gmp::mpn_cmp(out.as_ptr(), m.as_ptr(), len) } >= 0 {
        // SAFETY: as above; in-place subtraction is allowed by GMP.
        unsafe {
            gmp::mpn_sub_n(out.as_mut_ptr(), out.as_ptr(), m.as_ptr(), len);
        }
    }
}

/// GMP's `mpn_addmul_1` with [`super::adx::addmul_row`]'s signature and contract.
///
/// # Safety
/// `t` is valid for reads and writes and `m` for reads of `n` words each.
unsafe fn gmp_row(t: *mut u64, m: *const u64, n: usize, q: u64) -> u64 {
    // SAFETY: the caller's contract; GMP allows the destination to be read and written in
    // place.
    unsafe { gmp::mpn_addmul_1(t, m, n as gmp::size_t, q) }
}

/// The rows of [`redc`]: for each word `i < n` (`n = row_m.len() + skip`), `q = t_i·minv`,
/// `t[i + skip..] += q·row_m` by `row`, and the row's carry parked in `t_i`.
///
/// Why `row` is an `unsafe fn` argument rather than chosen per row: inlined with a constant
/// kernel, `skip` and `minv`, the loop keeps nothing but the row in it.
#[inline(always)]
fn add_rows(
    t: &mut [u64],
    row_m: &[u64],
    skip: usize,
    minv: u64,
    row: unsafe fn(*mut u64, *const u64, usize, u64) -> u64,
) {
    let row_len = row_m.len();
    let n = row_len + skip;
    assert_eq!(t.len(), 2 * n);
    for i in 0..n {
        let q = t[i].wrapping_mul(minv);
        // SAFETY: `t` has 2n words and `i + skip + row_len = i + n ≤ 2n - 1`, so the row's
        // `row_len` words are inside `t`; `row_m` is `row_len` words and does not overlap
        // `t`; `redc` only passes the ADX row where `Rows::Adx` was chosen, which is only
        // where the CPU has BMI2 and ADX (`Rows::best`, or a test that checked
        // `adx::available`).
        let carry = unsafe { row(t.as_mut_ptr().add(i + skip), row_m.as_ptr(), row_len, q) };
        // The word just cleared (t[i] + low(q·m_0) ≡ 0 mod 2^64, or t[i] - q = 0) is dead
        // from here on: park the row's carry there (its place is word i + n either way) and
        // add all carries into the high half in one pass below, instead of propagating each
        // through the upper words (GMP's redc_1 does the same).
        t[i] = carry;
    }
}

impl MpnModulus {
    pub(crate) fn new(modulus: &Integer) -> Self {
        Self::with_rows(modulus, Rows::best())
    }

    /// `rows` must be one this CPU can run ([`Rows::best`] is; tests compare both).
    pub(crate) fn with_rows(modulus: &Integer, rows: Rows) -> Self {
        let n = modulus.significant_bits().div_ceil(64) as usize;
        let m = to_words(modulus, n);
        let m0 = m[0];
        // Newton's iteration for m0⁻¹ mod 2^64: correct to 3 bits for odd m0, doubling
        // with every step (3 → 6 → 12 → 24 → 48 → 96).
        let mut inv: u64 = m0;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(m0.wrapping_mul(inv)));
        }
        let r = Integer::from(Integer::u_pow_u(2, 64 * n as u32)) % modulus;
        let rr = Integer::from(&r * &r) % modulus;
        // An all-ones modulus (2^(64n) - 1) has no shorter row; it keeps the plain ones.
        let skip = m.iter().take_while(|&&w| w == u64::MAX).count();
        let skip = if skip == n { 0 } else { skip };
        let row_m = if skip == 0 {
            m.clone()
        } else {
            to_words(
                &(Integer::from(modulus + 1u32) >> (64 * skip as u32)),
                n - skip,
            )
        };
        MpnModulus {
            modulus: modulus.clone(),
            one: to_words(&r, n),
            rr: to_words(&rr, n),
            m,
            minv: inv.wrapping_neg(),
            rows,
            skip,
            row_m,
        }
    }

    pub(crate) fn words(&self) -> usize {
        self.m.len()
    }

    /// `out = a·b·R⁻¹ mod m`; `a` and `b` may be the same slice (then GMP squares), `out` must
    /// be distinct from both.
    fn mul_to(&self, out: &mut [u64], a: &[u64], b: &[u64]) {
        let n = self.words();
        assert!(
            a.len() == n && b.len() == n && out.len() == n,
            "residue does not belong to this modulus"
        );
        let square = std::ptr::eq(a, b);
        let run = |t: &mut [u64], out: &mut [u64]| {
            // SAFETY: `t` has 2n words and is a buffer of its own (never `a` or `b`), as
            // mpn_mul_n / mpn_sqr require of the destination; `a` and `b` are n words.
            unsafe {
                if square {
                    gmp::mpn_sqr(t.as_mut_ptr(), a.as_ptr(), n as gmp::size_t);
                } else {
                    gmp::mpn_mul_n(t.as_mut_ptr(), a.as_ptr(), b.as_ptr(), n as gmp::size_t);
                }
            }
            redc(out, t, self);
        };
        with_words(2 * n, |t| run(t, out));
    }

    /// The product of `first` and every slice of `rest` (fixed-base table entries), through
    /// one [`Scratch`] for the whole chain, prefetching the entry
    /// [`super::PREFETCH_AHEAD`] places ahead before each product (the caller prefetched the
    /// first ones).
    pub(crate) fn product(&self, first: &[u64], rest: &[&[u64]]) -> Vec<u64> {
        assert_eq!(
            first.len(),
            self.words(),
            "residue does not belong to this modulus"
        );
        let mut acc = first.to_vec();
        let mut scratch = Scratch::new(self.words());
        for (k, b) in rest.iter().enumerate() {
            if let Some(ahead) = rest.get(k + super::PREFETCH_AHEAD) {
                super::prefetch_words(ahead);
            }
            scratch.mul(self, &mut acc, b);
        }
        acc
    }

    /// `a = f(a)` through a temporary (the product needs `out` distinct from its inputs).
    fn assign_via_temp(&self, a: &mut [u64], f: impl FnOnce(&mut [u64], &[u64])) {
        with_words(a.len(), |tmp| {
            f(tmp, a);
            a.copy_from_slice(tmp);
        });
    }

    /// `x` in `[0, m)` to Montgomery form.
    fn enter(&self, x: &Integer) -> Vec<u64> {
        let mut v = to_words(x, self.words());
        self.mul_assign(&mut v, &self.rr);
        v
    }

    pub(crate) fn residue_of(&self, x: &Integer) -> Residue {
        Residue(Repr::Mpn(self.enter(x)))
    }

    pub(crate) fn to_integer(&self, x: &[u64]) -> Integer {
        let n = self.words();
        assert_eq!(x.len(), n, "residue does not belong to this modulus");
        // x·R⁻¹ is the REDC of x itself (a double-width number with a zero high half).
        let mut t = vec![0u64; 2 * n];
        t[..n].copy_from_slice(x);
        let mut out = vec![0u64; n];
        redc(&mut out, &mut t, self);
        Integer::from_digits(&out, Order::Lsf)
    }

    /// `x·k mod m` (canonical) for the residue stored as `a` (`x·R`) and `0 <= k < m`: one
    /// Montgomery product with `k` as it is.
    pub(crate) fn mul_to_integer(&self, a: &[u64], k: &Integer) -> Integer {
        let k = to_words(k, self.words());
        let mut out = vec![0u64; self.words()];
        self.mul_to(&mut out, a, &k);
        Integer::from_digits(&out, Order::Lsf)
    }

    /// `R mod m`.
    pub(crate) fn montgomery_factor(&self) -> Integer {
        Integer::from_digits(&self.one, Order::Lsf)
    }

    /// The residue whose stored words are `stored` (`< m`).
    pub(crate) fn residue_from_stored(&self, stored: &Integer) -> Residue {
        Residue(Repr::Mpn(to_words(stored, self.words())))
    }

    pub(crate) fn one(&self) -> Residue {
        Residue(Repr::Mpn(self.one.clone()))
    }

    pub(crate) fn mul_assign(&self, a: &mut [u64], b: &[u64]) {
        self.assign_via_temp(a, |out, a| self.mul_to(out, a, b));
    }

    pub(crate) fn mul_into(&self, out: &mut Vec<u64>, a: &[u64], b: &[u64]) {
        out.resize(self.words(), 0);
        self.mul_to(out, a, b);
    }

    pub(crate) fn square_assign(&self, a: &mut [u64]) {
        self.assign_via_temp(a, |out, a| self.mul_to(out, a, a));
    }

    pub(crate) fn pow(&self, base: &[u64], exp: &Integer) -> Vec<u64> {
        if self.rows == Rows::Gmp && exp.significant_bits() >= POWM_MIN_EXP_BITS {
            let b = self.to_integer(base);
            let r = b
                .pow_mod(exp, &self.modulus)
                .expect("non-negative exponent and odd modulus > 1");
            return self.enter(&r);
        }
        // Scratch buffers reused across the whole exponentiation ([`Scratch`]): OU
        // decryption's 224 squarings and ~50 products modulo p² are 0.4-0.5 µs each. Two,
        // because each closure needs its own.
        let mut for_mul = Scratch::new(self.words());
        let mut for_sqr = Scratch::new(self.words());
        super::sliding_window_pow(
            base.to_vec(),
            exp,
            || self.one.clone(),
            |a: &mut Vec<u64>, b: &Vec<u64>| for_mul.mul(self, a, b),
            |a: &mut Vec<u64>| for_sqr.square(self, a),
        )
    }
}

/// A double-width product buffer and a result buffer for chains of products modulo one
/// modulus. Why: at 11 to 22 words a product with its reduction takes 0.15-0.5 µs, and
/// clearing a fresh scratch buffer and copying each result back (what `mul_assign` does for a
/// single product) cost several per cent of the 20-odd products of an OU encryption; here the
/// result is swapped into place.
struct Scratch {
    t: Vec<u64>,
    out: Vec<u64>,
}

impl Scratch {
    fn new(n: usize) -> Self {
        Scratch {
            t: vec![0u64; 2 * n],
            out: vec![0u64; n],
        }
    }

    /// `a = a·b·R⁻¹ mod m`.
    #[inline(always)]
    fn mul(&mut self, ring: &MpnModulus, a: &mut Vec<u64>, b: &[u64]) {
        let n = ring.words();
        assert!(
            a.len() == n && b.len() == n && self.out.len() == n,
            "residue does not belong to this modulus"
        );
        // SAFETY: `t` has 2n words and is its own buffer; `a` and `b` have n words.
        unsafe {
            gmp::mpn_mul_n(
                self.t.as_mut_ptr(),
                a.as_ptr(),
                b.as_ptr(),
                n as gmp::size_t,
            );
        }
        self.reduce_into(ring, a);
    }

    /// `a = a²·R⁻¹ mod m`.
    #[inline(always)]
    fn square(&mut self, ring: &MpnModulus, a: &mut Vec<u64>) {
        let n = ring.words();
        assert!(
            a.len() == n && self.out.len() == n,
            "residue does not belong to this modulus"
        );
        // SAFETY: `t` has 2n words and is its own buffer; `a` has n words.
        unsafe { gmp::mpn_sqr(self.t.as_mut_ptr(), a.as_ptr(), n as gmp::size_t) };
        self.reduce_into(ring, a);
    }

    #[inline(always)]
    fn reduce_into(&mut self, ring: &MpnModulus, a: &mut Vec<u64>) {
        redc(&mut self.out, &mut self.t, ring);
        std::mem::swap(a, &mut self.out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn modulus_from(words: &[u64]) -> Integer {
        let mut m = Integer::from_digits(words, Order::Lsf);
        m.set_bit(0, true);
        m.set_bit((words.len() * 64 - 1) as u32, true);
        m
    }

    /// Moduli whose low words are all ones reduce by rows that many words shorter
    /// ([`redc`]): products, squares, conversions and powers equal integer arithmetic for
    /// every such count from 0 to n - 1 words, with GMP's rows and, where the CPU has BMI2
    /// and ADX, Ferry's.
    #[test]
    fn moduli_with_all_ones_low_words_reduce_by_shorter_rows() {
        let mut rand = rug::rand::RandState::new();
        rand.seed(&Integer::from(2048));
        let mut rows_here = vec![Rows::Gmp];
        if super::super::adx::available() {
            rows_here.push(Rows::Adx);
        }
        for n in [2usize, 3, 5, 11, 22, 32] {
            for skip in 0..n {
                let mut m = Integer::from(Integer::random_bits(64 * n as u32, &mut rand));
                m.set_bit(64 * n as u32 - 1, true);
                m |= Integer::from(Integer::u_pow_u(2, 64 * skip as u32)) - 1u32;
                m.set_bit(0, true);
                // The word above the ones must not be all ones too (that would be one more).
                m.set_bit(64 * skip as u32 + 1, false);
                let x = Integer::from(Integer::random_below_ref(&m, &mut rand));
                let y = Integer::from(Integer::random_below_ref(&m, &mut rand));
                let e = Integer::from(Integer::random_bits(300, &mut rand));
                for &rows in &rows_here {
                    let ring = MpnModulus::with_rows(&m, rows);
                    let case = format!("{n} words, {skip} of ones, {rows:?} rows");
                    assert_eq!(ring.skip, skip, "{case}");
                    let (rx, ry) = (ring.enter(&x), ring.enter(&y));
                    assert_eq!(ring.to_integer(&rx), x, "{case}");
                    let mut p = Vec::new();
                    ring.mul_into(&mut p, &rx, &ry);
                    assert_eq!(ring.to_integer(&p), Integer::from(&x * &y) % &m, "{case}");
                    let mut sq = rx.clone();
                    ring.square_assign(&mut sq);
                    assert_eq!(
                        ring.to_integer(&sq),
                        Integer::from(x.square_ref()) % &m,
                        "{case}"
                    );
                    let want = Integer::from(x.pow_mod_ref(&e, &m).expect("odd modulus"));
                    assert_eq!(ring.to_integer(&ring.pow(&rx, &e)), want, "{case}");
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Both row kernels give the same canonical words as integer arithmetic, for products,
        /// squares, conversions and exponents on either side of [`POWM_MIN_EXP_BITS`] (so both
        /// of the GMP rows' exponentiation paths too), at 1 to 40 words.
        #[test]
        #[cfg_attr(not(ferry_host_adx), ignore = "this CPU has no BMI2/ADX, so only GMP's rows can run here")]
        fn adx_and_gmp_rows_agree_with_integers(
            mw in prop::collection::vec(prop_oneof![Just(u64::MAX), any::<u64>()], 1..40),
            xw in prop::collection::vec(prop_oneof![Just(u64::MAX), any::<u64>()], 40),
            yw in prop::collection::vec(any::<u64>(), 40),
            ew in prop::collection::vec(any::<u64>(), 1..5),
        ) {
            assert!(super::super::adx::available(), "built on a CPU with BMI2/ADX but running on one without");
            let m = modulus_from(&mw);
            let n = mw.len();
            let x = Integer::from_digits(&xw[..n], Order::Lsf) % &m;
            let y = Integer::from_digits(&yw[..n], Order::Lsf) % &m;
            let e = Integer::from_digits(&ew, Order::Lsf);
            let want_mul = Integer::from(&x * &y) % &m;
            let want_sqr = Integer::from(x.square_ref()) % &m;
            let want_pow = Integer::from(x.pow_mod_ref(&e, &m).expect("non-negative exponent"));
            for rows in [Rows::Gmp, Rows::Adx] {
                let ring = MpnModulus::with_rows(&m, rows);
                let (rx, ry) = (ring.enter(&x), ring.enter(&y));
                prop_assert_eq!(ring.to_integer(&rx), x.clone(), "{:?}", rows);
                let mut p = Vec::new();
                ring.mul_into(&mut p, &rx, &ry);
                prop_assert_eq!(ring.to_integer(&p), want_mul.clone(), "{:?}", rows);
                let mut s = rx.clone();
                ring.square_assign(&mut s);
                prop_assert_eq!(ring.to_integer(&s), want_sqr.clone(), "{:?}", rows);
                prop_assert_eq!(ring.to_integer(&ring.pow(&rx, &e)), want_pow.clone(), "{:?}", rows);
            }
        }
    }
}
