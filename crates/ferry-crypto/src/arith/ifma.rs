//! Montgomery arithmetic with AVX-512 IFMA (`vpmadd52luq` / `vpmadd52huq`).
//!
//! # Representation
//!
//! A modulus `m` of `bits` bits needs `n = ceil((bits + 2) / 52)` limbs of 52 bits (radix
//! `2^52`); numbers are stored in `k = ceil(n / 8)` 512-bit vectors ([`Chunk`]s), the limbs
//! above `n` being zero. The Montgomery radix is `R = 2^(52n)`, and the two spare bits
//! guarantee `4m < R`, which is what lets the multiplication skip its final subtraction
//! (see below). `k` ranges over `1..=MAX_CHUNKS` (16), i.e. moduli up to 6654 bits. 4096-bit
//! moduli use 79 limbs in 10 vectors, 2048-bit ones 40 in 5, 1366-bit ones 27 in 4, 683-bit
//! ones 14 in 2. Because `R` depends on `n` rather than on the padded `8k`, the loop below
//! runs `n` times, not `8k`: padding costs vector width but no extra iterations.
//!
//! A residue `x` is stored in Montgomery form `x·R mod m`, in `[0, m)` (canonical, so that
//! limb-wise equality is value equality), every limb `< 2^52`, in 64-byte-aligned chunks so
//! that each vector load is one aligned `vmovdqa64`.
//!
//! # Multiplication
//!
//! [`kern`] computes `a·b·R⁻¹ mod m` by word-serial Montgomery multiplication ("almost
//! Montgomery multiplication", Gueron & Krasnov / Drucker & Gueron): for each limb `b_i`,
//! `i < n`,
//!
//! ```text
//!   q   = (A_0 + a_0·b_i)·m' mod 2^52          m' = -m⁻¹ mod 2^52 (the Montgomery constant)
//!   A  += lo52(a·b_i) + lo52(m·q)              lane j gets the low halves of a_j·b_i, m_j·q
//!   A >>= one lane                             lane 0 is now ≡ 0 mod 2^52; its carry is kept
//!   A  += hi52(a·b_i) + hi52(m·q)              the high halves belong one lane up, i.e. to the
//!                                              same lane index after the shift
//! ```
//!
//! The accumulator `A` lives in `k` zmm registers. Lane 0 and its carry are tracked in
//! scalar registers (the next lane 0 is computed from lane 1, extracted one step early, plus
//! four scalar products) so that the serial dependency `q_i → q_(i+1)` avoids the
//! vector latencies.
//! Carries between lanes are **not** propagated inside the loop: each 64-bit lane only
//! accumulates. A value enters a lane and leaves it (by shifting down) within `n` iterations
//! and each iteration adds at most four terms `< 2^52` to it, so every lane stays below
//! `4n·2^52 + 2^12 ≤ 2^61` for `n ≤ 128` — far from overflowing 64 bits. After the loop a
//! vectorised normalisation (excess bits moved one lane up, then the rare remaining carries
//! resolved with mask arithmetic) restores 52-bit limbs, which `vpmadd52*` require as
//! inputs because they ignore bits 52..64.
//!
//! With inputs `< 2m` and `4m < R` the result `(a·b + q·m)/R < (4m² + R·m)/R < 2m`, so
//! chains of products (inside `pow`) stay in `[0, 2m)` without conditional subtraction; the
//! public operations subtract `m` once at the end to return canonical residues.
//!
//! The partial sum after `i` steps is `(a·(b mod 2^(52i)) + Q·m) / 2^(52i) < a + m < 3m`,
//! so it always fits in the `8k` lanes, and the final result `< 2m < R` has zero limbs
//! above `n`, as the representation requires.
//!
//! Squaring currently uses the same routine (`amm(a, a)`); a dedicated squaring that skips
//! the symmetric half of the products is possible future work.
//!
//! # Detection
//!
//! [`available`] checks `avx512f`, `avx512ifma` and `bmi2` with `is_x86_feature_detected!`
//! (cached by std). An [`IfmaModulus`] can only be built when it returns true, and every
//! call into the `#[target_feature]` kernels goes through an `IfmaModulus`, which is what
//! makes those calls sound. On other architectures the kernels are not compiled at all and
//! [`IfmaModulus::new`] always returns `None`.

use super::{Repr, Residue};
use rug::Integer;
use rug::integer::Order;

pub(crate) const LIMB_BITS: u32 = 52;
pub(crate) const LIMB_MASK: u64 = (1 << LIMB_BITS) - 1;
/// Largest supported number of 512-bit vectors per number (128 limbs).
pub(crate) const MAX_CHUNKS: usize = 16;
/// Largest supported modulus size: two bits of headroom below `2^(52·128)`.
pub(crate) const MAX_BITS: u32 = (MAX_CHUNKS as u32) * 8 * LIMB_BITS - 2;

/// Eight 52-bit limbs (least significant first), aligned to one zmm register.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C, align(64))]
pub(crate) struct Chunk(pub(crate) [u64; 8]);

/// Whether this CPU can run the IFMA kernels.
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512ifma")
            && std::arch::is_x86_feature_detected!("bmi2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Number of chunks for a modulus of `bits` bits, or `None` if it is too large.
pub(crate) fn chunks_for_bits(bits: u32) -> Option<usize> {
    if bits > MAX_BITS {
        return None;
    }
    let limbs = (bits + 2).div_ceil(LIMB_BITS) as usize;
    Some(limbs.div_ceil(8).max(1))
}

/// `x` (which must satisfy `0 <= x < 2^(52·8k)`) as `k` chunks of 52-bit limbs.
fn to_limbs(x: &Integer, k: usize) -> Vec<Chunk> {
    debug_assert!(*x >= 0 && x.significant_bits() as usize <= k * 8 * LIMB_BITS as usize);
    let words = x.to_digits::<u64>(Order::Lsf);
    let word = |i: usize| words.get(i).copied().unwrap_or(0);
    let mut out = vec![Chunk::default(); k];
    for i in 0..k * 8 {
        let bit = i * LIMB_BITS as usize;
        let (w, s) = (bit / 64, bit % 64);
        let mut v = word(w) >> s;
        if s > 64 - LIMB_BITS as usize {
            v |= word(w + 1) << (64 - s);
        }
        out[i / 8].0[i % 8] = v & LIMB_MASK;
    }
    out
}

/// The integer whose 52-bit limbs are `limbs` (each limb must be `< 2^52`).
fn from_limbs(limbs: &[Chunk]) -> Integer {
    let n = limbs.len() * 8;
    let mut words = vec![0u64; (n * LIMB_BITS as usize).div_ceil(64) + 1];
    for i in 0..n {
        let v = limbs[i / 8].0[i % 8];
        debug_assert!(v <= LIMB_MASK);
        let bit = i * LIMB_BITS as usize;
        let (w, s) = (bit / 64, bit % 64);
        words[w] |= v << s;
        if s > 64 - LIMB_BITS as usize {
            words[w + 1] |= v >> (64 - s);
        }
    }
    Integer::from_digits(&words, Order::Lsf)
}

/// `-m⁻¹ mod 2^52` for odd `m0` (Newton iteration: each step doubles the correct bits).
fn neg_inv_mod_2_52(m0: u64) -> u64 {
    debug_assert!(m0 & 1 == 1);
    let mut inv: u64 = m0; // correct to 3 bits: m·m ≡ 1 mod 8 for odd m
    for _ in 0..5 {
        inv = inv.wrapping_mul(2u64.wrapping_sub(m0.wrapping_mul(inv)));
    }
    inv.wrapping_neg() & LIMB_MASK
}

/// A modulus prepared for the IFMA kernels. Only constructible when [`available`] holds.
#[derive(Clone, Debug)]
pub(crate) struct IfmaModulus {
    k: usize,
    /// Number of limbs `n` (and Montgomery steps per product); `R = 2^(52n)`.
    n: usize,
    m: Vec<Chunk>,
    /// `-m⁻¹ mod 2^52`.
    minv: u64,
    /// `R mod m`: Montgomery form of 1.
    one: Vec<Chunk>,
    /// `R² mod m`: multiplying by it converts into Montgomery form.
    rr: Vec<Chunk>,
    /// The plain integer 1: multiplying by it converts out of Montgomery form.
    unit: Vec<Chunk>,
}

impl IfmaModulus {
    /// `None` if the CPU lacks IFMA or the modulus is too large; `modulus` must be odd > 1.
    pub(crate) fn new(modulus: &Integer) -> Option<Self> {
        if !available() {
            return None;
        }
        let bits = modulus.significant_bits();
        let k = chunks_for_bits(bits)?;
        let n = (bits + 2).div_ceil(LIMB_BITS) as usize;
        let n_bits = n as u32 * LIMB_BITS;
        let m = to_limbs(modulus, k);
        let minv = neg_inv_mod_2_52(m[0].0[0]);
        let r = Integer::from(Integer::u_pow_u(2, n_bits)) % modulus;
        let rr = Integer::from(&r * &r) % modulus;
        let mut unit = vec![Chunk::default(); k];
        unit[0].0[0] = 1;
        Some(IfmaModulus {
            k,
            n,
            one: to_limbs(&r, k),
            rr: to_limbs(&rr, k),
            m,
            minv,
            unit,
        })
    }

    fn check(&self, x: &[Chunk]) {
        assert_eq!(x.len(), self.k, "residue does not belong to this modulus");
    }

    /// Montgomery form of `x`, which must be in `[0, m)`.
    pub(crate) fn residue_of(&self, x: &Integer) -> Residue {
        let mut v = to_limbs(x, self.k);
        self.mul_assign(&mut v, &self.rr);
        Residue(Repr::Ifma(v))
    }

    pub(crate) fn to_integer(&self, x: &[Chunk]) -> Integer {
        let mut v = x.to_vec();
        self.mul_assign(&mut v, &self.unit);
        from_limbs(&v)
    }

    pub(crate) fn one(&self) -> Residue {
        Residue(Repr::Ifma(self.one.clone()))
    }

    /// `a = a·b·R⁻¹ mod m`, canonical.
    pub(crate) fn mul_assign(&self, a: &mut [Chunk], b: &[Chunk]) {
        self.check(a);
        self.check(b);
        // SAFETY: `self` exists, so `available()` returned true; lengths were checked.
        unsafe { kern::mul_assign(self.k, a, b, &self.m, self.n, self.minv, true) }
    }

    /// `out = a·b·R⁻¹ mod m`, canonical, reusing `out`'s allocation.
    pub(crate) fn mul_into(&self, out: &mut Vec<Chunk>, a: &[Chunk], b: &[Chunk]) {
        self.check(a);
        self.check(b);
        out.resize(self.k, Chunk::default());
        // SAFETY: as in `mul_assign`.
        unsafe { kern::mul_into(self.k, out, a, b, &self.m, self.n, self.minv) }
    }

    /// `a = a²·R⁻¹ mod m`, canonical.
    pub(crate) fn square_assign(&self, a: &mut [Chunk]) {
        self.check(a);
        // SAFETY: as in `mul_assign`.
        unsafe { kern::square_assign(self.k, a, &self.m, self.n, self.minv, true) }
    }

    /// `base^exp` by sliding windows; the intermediate values stay in `[0, 2m)` and only the
    /// result is reduced to `[0, m)`.
    pub(crate) fn pow(&self, base: &[Chunk], exp: &Integer) -> Vec<Chunk> {
        self.check(base);
        let (k, n, m, minv) = (self.k, self.n, &self.m[..], self.minv);
        let mut out = super::sliding_window_pow(
            base.to_vec(),
            exp,
            || self.one.clone(),
            // SAFETY (both closures): as in `mul_assign`; every buffer has `k` chunks since
            // they are clones of `base` or `self.one`.
            |a: &mut Vec<Chunk>, b: &Vec<Chunk>| unsafe {
                kern::mul_assign(k, a, b, m, n, minv, false)
            },
            |a: &mut Vec<Chunk>| unsafe { kern::square_assign(k, a, m, n, minv, false) },
        );
        // SAFETY: as in `mul_assign`.
        unsafe { kern::reduce_once(k, &mut out, m) };
        out
    }
}

/// Stand-ins for the kernels where they cannot exist. Also compiled into x86_64 test builds,
/// where `kernel_signatures_match` checks that they keep the kernels' exact signatures, so
/// the non-x86 build cannot silently rot.
#[cfg(any(not(target_arch = "x86_64"), test))]
#[allow(dead_code)]
mod kern_fallback {
    // Never called: `IfmaModulus::new` returns `None` off x86_64.
    use super::Chunk;

    pub(super) unsafe fn mul_assign(
        _: usize,
        _: &mut [Chunk],
        _: &[Chunk],
        _: &[Chunk],
        _: usize,
        _: u64,
        _: bool,
    ) {
        unreachable!("IFMA kernels exist only on x86_64")
    }
    pub(super) unsafe fn mul_into(
        _: usize,
        _: &mut [Chunk],
        _: &[Chunk],
        _: &[Chunk],
        _: &[Chunk],
        _: usize,
        _: u64,
    ) {
        unreachable!("IFMA kernels exist only on x86_64")
    }
    pub(super) unsafe fn square_assign(
        _: usize,
        _: &mut [Chunk],
        _: &[Chunk],
        _: usize,
        _: u64,
        _: bool,
    ) {
        unreachable!("IFMA kernels exist only on x86_64")
    }
    pub(super) unsafe fn reduce_once(_: usize, _: &mut [Chunk], _: &[Chunk]) {
        unreachable!("IFMA kernels exist only on x86_64")
    }
}

#[cfg(not(target_arch = "x86_64"))]
use kern_fallback as kern;

/// Compile-time check: an array forces both functions to one fn-pointer type.
#[cfg(all(test, target_arch = "x86_64"))]
#[allow(dead_code)]
fn kernel_signatures_match() {
    type MulAssign = unsafe fn(usize, &mut [Chunk], &[Chunk], &[Chunk], usize, u64, bool);
    type MulInto = unsafe fn(usize, &mut [Chunk], &[Chunk], &[Chunk], &[Chunk], usize, u64);
    type SquareAssign = unsafe fn(usize, &mut [Chunk], &[Chunk], usize, u64, bool);
    type ReduceOnce = unsafe fn(usize, &mut [Chunk], &[Chunk]);
    let _: [MulAssign; 2] = [kern::mul_assign, kern_fallback::mul_assign];
    let _: [MulInto; 2] = [kern::mul_into, kern_fallback::mul_into];
    let _: [SquareAssign; 2] = [kern::square_assign, kern_fallback::square_assign];
    let _: [ReduceOnce; 2] = [kern::reduce_once, kern_fallback::reduce_once];
}

#[cfg(target_arch = "x86_64")]
// Indexing several `[__m512i; K]` arrays by the same lane-group index reads better than zips.
#[allow(clippy::needless_range_loop)]
mod kern {
    //! The `#[target_feature]` kernels, monomorphised for every chunk count `K` so that the
    //! accumulator is an array of `K` zmm values the compiler keeps in registers.
    //!
    //! The entry points are `unsafe` only because they require avx512f + avx512ifma + bmi2;
    //! their slice arguments are converted to `&[Chunk; K]` with a length check, so no input
    //! can cause an out-of-bounds access.

    use super::{Chunk, LIMB_BITS, LIMB_MASK};
    use core::arch::x86_64::*;

    /// Calls `$f::<K>` for the runtime chunk count `$k` (1..=16).
    macro_rules! by_chunks {
        ($k:expr, $f:ident($($arg:expr),*)) => {
            match $k {
                1 => $f::<1>($($arg),*),
                2 => $f::<2>($($arg),*),
                3 => $f::<3>($($arg),*),
                4 => $f::<4>($($arg),*),
                5 => $f::<5>($($arg),*),
                6 => $f::<6>($($arg),*),
                7 => $f::<7>($($arg),*),
                8 => $f::<8>($($arg),*),
                9 => $f::<9>($($arg),*),
                10 => $f::<10>($($arg),*),
                11 => $f::<11>($($arg),*),
                12 => $f::<12>($($arg),*),
                13 => $f::<13>($($arg),*),
                14 => $f::<14>($($arg),*),
                15 => $f::<15>($($arg),*),
                16 => $f::<16>($($arg),*),
                other => panic!("unsupported IFMA chunk count {other}"),
            }
        };
    }

    /// `a = a·b·R⁻¹` (mod m; canonical if `canon`, else in `[0, 2m)`).
    ///
    /// # Safety
    /// The CPU must support avx512f, avx512ifma and bmi2.
    pub(super) unsafe fn mul_assign(
        k: usize,
        a: &mut [Chunk],
        b: &[Chunk],
        m: &[Chunk],
        n: usize,
        minv: u64,
        canon: bool,
    ) {
        // SAFETY: the caller guarantees the CPU features.
        unsafe { by_chunks!(k, mul_assign_k(a, b, m, n, minv, canon)) }
    }

    /// `out = a·b·R⁻¹ mod m`, canonical.
    ///
    /// # Safety
    /// The CPU must support avx512f, avx512ifma and bmi2.
    pub(super) unsafe fn mul_into(
        k: usize,
        out: &mut [Chunk],
        a: &[Chunk],
        b: &[Chunk],
        m: &[Chunk],
        n: usize,
        minv: u64,
    ) {
        // SAFETY: the caller guarantees the CPU features.
        unsafe { by_chunks!(k, mul_into_k(out, a, b, m, n, minv)) }
    }

    /// `a = a²·R⁻¹` (mod m; canonical if `canon`, else in `[0, 2m)`).
    ///
    /// # Safety
    /// The CPU must support avx512f, avx512ifma and bmi2.
    pub(super) unsafe fn square_assign(
        k: usize,
        a: &mut [Chunk],
        m: &[Chunk],
        n: usize,
        minv: u64,
        canon: bool,
    ) {
        // SAFETY: the caller guarantees the CPU features.
        unsafe { by_chunks!(k, square_assign_k(a, m, n, minv, canon)) }
    }

    /// `a = a mod m` for `a` in `[0, 2m)`.
    ///
    /// # Safety
    /// The CPU must support avx512f, avx512ifma and bmi2.
    pub(super) unsafe fn reduce_once(k: usize, a: &mut [Chunk], m: &[Chunk]) {
        // SAFETY: the caller guarantees the CPU features.
        unsafe { by_chunks!(k, reduce_once_k(a, m)) }
    }

    fn arr<const K: usize>(x: &[Chunk]) -> &[Chunk; K] {
        x.try_into()
            .expect("residue length does not match the modulus")
    }

    fn arr_mut<const K: usize>(x: &mut [Chunk]) -> &mut [Chunk; K] {
        x.try_into()
            .expect("residue length does not match the modulus")
    }

    #[target_feature(enable = "avx512f,avx512ifma,bmi2")]
    fn mul_assign_k<const K: usize>(
        a: &mut [Chunk],
        b: &[Chunk],
        m: &[Chunk],
        n: usize,
        minv: u64,
        canon: bool,
    ) {
        let (b, m) = (arr::<K>(b), arr::<K>(m));
        let a = arr_mut::<K>(a);
        let r = amm(a, b, m, n, minv);
        store(a, if canon { canonicalize(r, m) } else { r });
    }

    #[target_feature(enable = "avx512f,avx512ifma,bmi2")]
    fn mul_into_k<const K: usize>(
        out: &mut [Chunk],
        a: &[Chunk],
        b: &[Chunk],
        m: &[Chunk],
        n: usize,
        minv: u64,
    ) {
        let (a, b, m) = (arr::<K>(a), arr::<K>(b), arr::<K>(m));
        let r = canonicalize(amm(a, b, m, n, minv), m);
        store(arr_mut::<K>(out), r);
    }

    #[target_feature(enable = "avx512f,avx512ifma,bmi2")]
    fn square_assign_k<const K: usize>(
        a: &mut [Chunk],
        m: &[Chunk],
        n: usize,
        minv: u64,
        canon: bool,
    ) {
        let m = arr::<K>(m);
        let a = arr_mut::<K>(a);
        let r = amm(a, a, m, n, minv);
        store(a, if canon { canonicalize(r, m) } else { r });
    }

    #[target_feature(enable = "avx512f,avx512ifma,bmi2")]
    fn reduce_once_k<const K: usize>(a: &mut [Chunk], m: &[Chunk]) {
        let m = arr::<K>(m);
        let a = arr_mut::<K>(a);
        let r = canonicalize(load(a), m);
        store(a, r);
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,bmi2")]
    fn load<const K: usize>(x: &[Chunk; K]) -> [__m512i; K] {
        let mut v = [_mm512_setzero_si512(); K];
        for i in 0..K {
            // SAFETY: `x[i]` is 64 readable bytes aligned to 64 (`Chunk` is `align(64)`).
            v[i] = unsafe { _mm512_load_si512(x[i].0.as_ptr().cast()) };
        }
        v
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,bmi2")]
    fn store<const K: usize>(x: &mut [Chunk; K], v: [__m512i; K]) {
        for i in 0..K {
            // SAFETY: `x[i]` is 64 writable bytes aligned to 64 (`Chunk` is `align(64)`).
            unsafe { _mm512_store_si512(x[i].0.as_mut_ptr().cast(), v[i]) };
        }
    }

    /// Test access to [`normalize`] for two chunks of raw lanes.
    ///
    /// # Safety
    /// The CPU must support avx512f, avx512ifma and bmi2.
    #[cfg(test)]
    pub(super) unsafe fn normalize_2(x: [Chunk; 2]) -> [Chunk; 2] {
        #[target_feature(enable = "avx512f,avx512ifma,bmi2")]
        fn run(x: [Chunk; 2]) -> [Chunk; 2] {
            let mut out = [Chunk::default(); 2];
            store(&mut out, normalize(load(&x)));
            out
        }
        // SAFETY: the caller guarantees the CPU features.
        unsafe { run(x) }
    }

    /// Test access to [`canonicalize`] for two chunks.
    ///
    /// # Safety
    /// The CPU must support avx512f, avx512ifma and bmi2.
    #[cfg(test)]
    pub(super) unsafe fn canonicalize_2(x: [Chunk; 2], m: [Chunk; 2]) -> [Chunk; 2] {
        #[target_feature(enable = "avx512f,avx512ifma,bmi2")]
        fn run(x: [Chunk; 2], m: [Chunk; 2]) -> [Chunk; 2] {
            let mut out = [Chunk::default(); 2];
            store(&mut out, canonicalize(load(&x), &m));
            out
        }
        // SAFETY: the caller guarantees the CPU features.
        unsafe { run(x, m) }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,bmi2")]
    fn lane0(v: __m512i) -> u64 {
        _mm_cvtsi128_si64(_mm512_castsi512_si128(v)) as u64
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,bmi2")]
    fn lane1(v: __m512i) -> u64 {
        _mm_extract_epi64::<1>(_mm512_castsi512_si128(v)) as u64
    }

    /// Almost Montgomery multiplication: `a·b·R⁻¹ mod m` in `[0, 2m)` with 52-bit limbs,
    /// for `a, b < 2m`, `R = 2^(52n)` (see the module docs for the algorithm and the lane
    /// bounds).
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,bmi2")]
    fn amm<const K: usize>(
        a: &[Chunk; K],
        b: &[Chunk; K],
        m: &[Chunk; K],
        n: usize,
        minv: u64,
    ) -> [__m512i; K] {
        // Also bounds the scalar loads of `b` below (a panic, never an out-of-bounds read).
        assert!(n <= 8 * K, "more Montgomery steps than limbs");
        let av = load(a);
        let mv = load(m);
        let (a0, a1) = (a[0].0[0], a[0].0[1]);
        let (m0, m1) = (m[0].0[0], m[0].0[1]);
        let lo = |x: u64, y: u64| x.wrapping_mul(y) & LIMB_MASK;
        let hi = |x: u64, y: u64| ((x as u128 * y as u128) >> LIMB_BITS) as u64;
        let zero = _mm512_setzero_si512();
        let mut acc = [zero; K];
        // The true value of lane 0 is `v + carry`. `v` equals `lane0(acc[0])` but is
        // computed in scalar registers from lane 1, extracted one step ahead: the next
        // lane 0 is this lane 1 plus four products known as soon as `q` is. That keeps the
        // vector→GPR transfer and the vector multiply-add latencies off the serial
        // dependency q_i → q_(i+1), which otherwise bounds small moduli. The carry out of
        // the lane shifted away likewise stays scalar instead of being inserted into the
        // vector.
        let mut v = 0u64;
        let mut carry = 0u64;
        for i in 0..n {
            let bi = b[i / 8].0[i % 8];
            let next_base = lane1(acc[0]);
            // q from the true low lane (only its low 52 bits matter).
            let t = v + carry + lo(a0, bi);
            let q = t.wrapping_mul(minv) & LIMB_MASK;
            // t + lo52(m0·q) ≡ 0 mod 2^52 by the choice of q; its high part moves up.
            carry = (t + lo(m0, q)) >> LIMB_BITS;
            v = next_base + lo(a1, bi) + lo(m1, q) + hi(a0, bi) + hi(m0, q);

            let bv = _mm512_set1_epi64(bi as i64);
            let qv = _mm512_set1_epi64(q as i64);
            for j in 0..K {
                acc[j] = _mm512_madd52lo_epu64(acc[j], av[j], bv);
                acc[j] = _mm512_madd52lo_epu64(acc[j], mv[j], qv);
            }
            // Shift the whole accumulator down one lane (lane 0 of acc[0] is dropped:
            // its value is accounted for by `carry`); the high halves of lane j's products
            // belong to lane j + 1, i.e. lane j after the shift.
            for j in 0..K {
                let above = if j + 1 < K { acc[j + 1] } else { zero };
                acc[j] = _mm512_alignr_epi64::<1>(above, acc[j]);
            }
            for j in 0..K {
                acc[j] = _mm512_madd52hi_epu64(acc[j], av[j], bv);
                acc[j] = _mm512_madd52hi_epu64(acc[j], mv[j], qv);
            }
        }
        debug_assert_eq!(v, lane0(acc[0]));
        acc[0] = _mm512_mask_add_epi64(acc[0], 1, acc[0], _mm512_set1_epi64(carry as i64));
        normalize(acc)
    }

    /// Converts lanes `< 2^62` into 52-bit limbs of the same number (which must be `< R`).
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,bmi2")]
    fn normalize<const K: usize>(mut x: [__m512i; K]) -> [__m512i; K] {
        let maskv = _mm512_set1_epi64(LIMB_MASK as i64);
        let zero = _mm512_setzero_si512();
        // Pass 1: every lane keeps its low 52 bits and receives the excess (< 2^10) of the
        // lane below. Afterwards lanes are < 2^52 + 2^10, so at most a carry of 1 remains.
        let mut hi = [zero; K];
        for j in 0..K {
            hi[j] = _mm512_srli_epi64::<LIMB_BITS>(x[j]);
            x[j] = _mm512_and_si512(x[j], maskv);
        }
        debug_assert_eq!(
            _mm512_cmpneq_epu64_mask(hi[K - 1], zero) & 0x80,
            0,
            "value exceeds R"
        );
        let mut any_carry = 0u8;
        for j in 0..K {
            let below = if j > 0 { hi[j - 1] } else { zero };
            x[j] = _mm512_add_epi64(x[j], _mm512_alignr_epi64::<7>(hi[j], below));
            any_carry |= _mm512_cmpgt_epu64_mask(x[j], maskv);
        }
        if any_carry == 0 {
            // Almost always: a lane only overflows when its low 52 bits are within 2^10
            // of 2^52.
            return x;
        }
        // Pass 2 (rare): a lane > mask generates a carry, a lane == mask propagates one.
        // Adding `generate << 1` to `propagate` ripples through runs of propagating lanes,
        // exactly like binary addition; xor with `propagate` leaves the carry-in mask.
        let mut g: u128 = 0;
        let mut p: u128 = 0;
        for j in 0..K {
            g |= (_mm512_cmpgt_epu64_mask(x[j], maskv) as u128) << (8 * j);
            p |= (_mm512_cmpeq_epu64_mask(x[j], maskv) as u128) << (8 * j);
        }
        let carry_in = (g << 1).wrapping_add(p) ^ p;
        let one = _mm512_set1_epi64(1);
        for j in 0..K {
            let c = (carry_in >> (8 * j)) as u8;
            x[j] = _mm512_and_si512(_mm512_mask_add_epi64(x[j], c, x[j], one), maskv);
        }
        x
    }

    /// `x mod m` for normalised `x < 2m`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,bmi2")]
    fn canonicalize<const K: usize>(x: [__m512i; K], m: &[Chunk; K]) -> [__m512i; K] {
        let mv = load(m);
        // Compare from the most significant chunk: the first chunk that differs decides, and
        // within it the highest differing lane, i.e. the larger of the disjoint gt/lt masks.
        let mut ge = true;
        for j in (0..K).rev() {
            let gt = _mm512_cmpgt_epu64_mask(x[j], mv[j]);
            let lt = _mm512_cmplt_epu64_mask(x[j], mv[j]);
            if gt != lt {
                ge = gt > lt;
                break;
            }
        }
        if !ge {
            return x;
        }
        // x - m: lanes with x < m generate a borrow, lanes with x == m propagate one (same
        // mask trick as the carries in `normalize`).
        let mut lt: u128 = 0;
        let mut eq: u128 = 0;
        let mut d = x;
        for j in 0..K {
            lt |= (_mm512_cmplt_epu64_mask(x[j], mv[j]) as u128) << (8 * j);
            eq |= (_mm512_cmpeq_epu64_mask(x[j], mv[j]) as u128) << (8 * j);
            d[j] = _mm512_sub_epi64(x[j], mv[j]);
        }
        let borrow_in = (lt << 1).wrapping_add(eq) ^ eq;
        let maskv = _mm512_set1_epi64(LIMB_MASK as i64);
        let one = _mm512_set1_epi64(1);
        for j in 0..K {
            let b = (borrow_in >> (8 * j)) as u8;
            d[j] = _mm512_and_si512(_mm512_mask_sub_epi64(d[j], b, d[j], one), maskv);
        }
        d
    }
}

/// The rare paths of the kernels' carry handling, driven with crafted lanes (random products
/// almost never reach them).
#[cfg(all(test, target_arch = "x86_64"))]
mod kernel_tests {
    use super::*;
    use proptest::prelude::*;

    /// The integer `sum lanes[i]·2^(52i)` for raw (possibly unnormalised) lanes.
    fn lanes_value(x: &[Chunk]) -> Integer {
        let mut v = Integer::new();
        for (i, &lane) in x.iter().flat_map(|c| c.0.iter()).enumerate() {
            v += Integer::from(lane) << (52 * i as u32);
        }
        v
    }

    fn chunks(lanes: &[u64]) -> [Chunk; 2] {
        let mut c = [Chunk::default(); 2];
        for (i, &l) in lanes.iter().enumerate() {
            c[i / 8].0[i % 8] = l;
        }
        c
    }

    /// Lanes near the carry boundaries: all-ones limbs propagate a carry, lanes just above
    /// 2^52 (after adding the excess of the lane below) generate one.
    fn lane() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(LIMB_MASK),
            (0u64..4).prop_map(|d| LIMB_MASK - d),
            (0u64..1 << 9).prop_map(|e| (e << 52) | (LIMB_MASK - (e & 3))),
            (0u64..1 << 61),
            Just(0u64),
        ]
    }

    /// The build script found IFMA on the build host, but this CPU lacks it.
    const MOVED_HOST: &str = "these tests were built on a CPU with AVX-512 IFMA but run on one \
                              without; rebuild them on this machine (cargo clean -p ferry-crypto)";

    proptest! {
        #[test]
        #[cfg_attr(not(ferry_host_ifma), ignore = "this CPU has no AVX-512 IFMA, so the kernel cannot run here; the portable and GMP backends' property tests cover this machine")]
        fn normalize_resolves_every_carry(lanes in prop::collection::vec(lane(), 16)) {
            assert!(available(), "{}", MOVED_HOST);
            let x = chunks(&lanes);
            let value = lanes_value(&x);
            // normalize requires the value to fit in the 16 limbs.
            prop_assume!(value.significant_bits() <= 16 * 52);
            // SAFETY: `available()` was checked above.
            let y = unsafe { kern::normalize_2(x) };
            prop_assert!(y.iter().all(|c| c.0.iter().all(|&l| l <= LIMB_MASK)));
            prop_assert_eq!(lanes_value(&y), value);
        }

        #[test]
        #[cfg_attr(not(ferry_host_ifma), ignore = "this CPU has no AVX-512 IFMA, so the kernel cannot run here; the portable and GMP backends' property tests cover this machine")]
        fn canonicalize_subtracts_once(mlanes in prop::collection::vec(any::<u64>(), 16),
                                       dl in prop::collection::vec(lane(), 16),
                                       small in any::<bool>()) {
            assert!(available(), "{}", MOVED_HOST);
            let mut m = from_limbs(&chunks(&mlanes.iter().map(|l| l & LIMB_MASK).collect::<Vec<_>>()));
            m.keep_bits_mut(16 * 52 - 2);
            m.set_bit(16 * 52 - 3, true);
            m.set_bit(0, true);
            // x = m + d with d < m; small d makes most limbs of x equal to m's (the borrow
            // propagation case), d = 0 checks x == m.
            let mut d = lanes_value(&chunks(&dl)) % &m;
            if small {
                d.keep_bits_mut(60);
            }
            for x in [Integer::from(&m + &d), d.clone()] {
                // SAFETY: `available()` was checked above.
                let y = unsafe { kern::canonicalize_2(to_limbs(&x, 2).try_into().unwrap(), to_limbs(&m, 2).try_into().unwrap()) };
                prop_assert_eq!(from_limbs(&y), d.clone());
            }
        }
    }
}
