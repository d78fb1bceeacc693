//! Modular arithmetic for the homomorphic schemes: an odd modulus prepared once
//! ([`MontModulus`]) and residues modulo it ([`Residue`]).
//!
//! Everything above this module (Paillier, Okamoto–Uchiyama) is written against this API
//! only, so the arithmetic backend can change without touching the schemes:
//!
//! * [`Backend::Gmp`] keeps residues as canonical GMP integers and reduces with GMP's
//!   division. It is the reference the other backends are tested against.
//! * [`Backend::Portable`] ([`portable`]) is Montgomery multiplication in plain Rust with
//!   64-bit limbs; it needs no division per product.
//! * [`Backend::Ifma`] ([`ifma`]) is Montgomery multiplication with AVX-512 IFMA on 52-bit
//!   limbs, by far the fastest where the CPU has it (x86_64 only, detected at run time).
//! * [`Backend::Mpn`] ([`mpn`]) is Montgomery multiplication on GMP's `mpn` assembly
//!   (products and dedicated squaring chosen by GMP at run time) with the reduction's rows in
//!   Ferry's own `mulx`/`adcx`/`adox` assembly ([`adx`]) where the CPU has BMI2 and ADX: the
//!   choice on CPUs without IFMA (AVX2-only servers) for moduli of 512 to 8192 bits (3072
//!   without ADX, where the rows are GMP's and long exponents go to GMP's `powm`).
//!
//! [`Backend::best_for`] picks the fastest backend available for a modulus size; the
//! environment variable `FERRY_ARITH_BACKEND=gmp|portable|ifma|mpn` overrides that choice (so CI
//! can exercise each backend) whenever the named backend can handle the modulus,
//! `FERRY_ARITH_BACKEND=no-ifma` chooses per size as a CPU without AVX-512 IFMA would, and
//! `FERRY_ARITH_BACKEND=no-adx` as one without IFMA and without BMI2/ADX (whose `mpn` backend
//! reduces with GMP's rows instead of [`adx`]'s).
//!
//! The Montgomery backends keep residues in Montgomery form, always reduced to `[0, m)`, so
//! equality of [`Residue`]s is equality of values for every backend. Nothing here is
//! constant time.
//!
//! Residues of one modulus must only be combined with that modulus; mixing moduli is a
//! logic error that debug builds catch with an assertion.

use rug::integer::Order;
use rug::{Assign, Integer};

mod adx;
mod gmp;
mod ifma;
mod mpn;
mod portable;

use std::sync::OnceLock;

/// Which implementation performs the modular multiplications.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// GMP multiplication followed by GMP division (canonical representation).
    Gmp,
    /// Montgomery multiplication in portable Rust (64-bit limbs).
    Portable,
    /// Montgomery multiplication with AVX-512 IFMA (52-bit limbs); x86_64 only.
    Ifma,
    /// Montgomery multiplication on GMP's `mpn` layer (64-bit limbs, GMP's assembly).
    Mpn,
}

/// Environment variable that overrides [`Backend::best_for`].
pub const BACKEND_ENV: &str = "FERRY_ARITH_BACKEND";

/// Smallest modulus (bits) for which [`Backend::fastest_for`] picks [`Backend::Mpn`] over
/// [`Backend::Gmp`] on CPUs without IFMA: below, a product is a few words and GMP's single
/// multiply-and-divide call costs less than the mpn backend's `n + 2` calls.
pub const MPN_MIN_BITS: u32 = 512;

/// Largest modulus (bits) for which [`Backend::fastest_for`] picks [`Backend::Mpn`] on a CPU
/// without BMI2/ADX, whose reduction rows are GMP's `mpn_addmul_1`: the OU moduli (1364-bit
/// `p²`, 2048-bit `n`) and Paillier's CRT moduli (2048-bit `p²`, `q²`) gain; from 4096 bits
/// (Paillier-2048's `n²`) GMP's subquadratic division makes its multiply-and-divide as fast
/// as that reduction, measured.
pub const MPN_MAX_BITS: u32 = 3072;

/// Largest modulus (bits) for which [`Backend::fastest_for`] picks [`Backend::Mpn`] where the
/// CPU has BMI2 and ADX ([`adx`]'s reduction row): measured on a 2-core AMD EPYC (Zen 4),
/// products and squarings are 16-33 % faster than GMP's multiply-and-divide at every size up
/// to 8192 bits (2048: 976/764 ns product/square against 1430/1209; 4096: 3346/2754 against
/// 4503/3865; 8192: 11.5/9.9 µs against 13.7/12.0), and exponentiation is level at 8192.
pub const MPN_MAX_BITS_ADX: u32 = 8192;

impl Backend {
    /// Every backend, in order of preference on a machine that has them all.
    pub const ALL: [Backend; 4] = [Backend::Ifma, Backend::Mpn, Backend::Portable, Backend::Gmp];

    /// The backend to use for a modulus of `bits` bits: the one named by
    /// `FERRY_ARITH_BACKEND` if set and usable for this size here, else the fastest one.
    pub fn best_for(bits: u32) -> Backend {
        match env_override() {
            Some(Override::Backend(b)) if b.supports(bits) => b,
            Some(Override::WithoutIfma) => Self::fastest_given(false, adx::available(), bits),
            Some(Override::WithoutIfmaOrAdx) => Self::fastest_given(false, false, bits),
            _ => Self::fastest_for(bits),
        }
    }

    /// The fastest backend for `bits`-bit moduli on this CPU, ignoring the environment.
    ///
    /// Measured on a 2-core AMD EPYC (Zen 4) in thread CPU time (the machine is shared),
    /// every backend in one process (`examples`-style probe and `cargo bench -p ferry-crypto
    /// --bench arith`): IFMA is 3-5x faster than the others from 512 to 6144 bits for products
    /// and exponentiation alike, so it wins wherever the CPU has it. Without IFMA, the `mpn`
    /// backend (Montgomery on GMP's assembly, no division per product) takes 2048-bit products
    /// in 1.37 µs against 1.59 µs for GMP's multiply-and-divide and squarings in 1.09 against
    /// 1.30 µs (OU-2048 encryption: 36 against 44 µs), and is level at 1364 bits; at 4096 bits
    /// (Paillier's `n²`) GMP's division is subquadratic and the two are level or GMP ahead
    /// (4.83/4.03 µs product/square against 4.93/4.99), so GMP keeps those sizes. The
    /// portable Rust Montgomery code loses to both everywhere.
    pub fn fastest_for(bits: u32) -> Backend {
        Self::fastest_given(ifma::available(), adx::available(), bits)
    }

    /// [`Backend::fastest_for`] for a CPU that has IFMA or not, and BMI2/ADX or not (so that
    /// the choice for AVX2-only CPUs is tested on any machine).
    pub(crate) fn fastest_given(has_ifma: bool, has_adx: bool, bits: u32) -> Backend {
        let mpn_max = if has_adx {
            MPN_MAX_BITS_ADX
        } else {
            MPN_MAX_BITS
        };
        if has_ifma && bits <= ifma::MAX_BITS {
            Backend::Ifma
        } else if (MPN_MIN_BITS..=mpn_max).contains(&bits) {
            Backend::Mpn
        } else {
            Backend::Gmp
        }
    }

    /// The backends usable on this CPU (for at least some modulus sizes).
    pub fn available() -> Vec<Backend> {
        Self::ALL.into_iter().filter(|b| b.is_available()).collect()
    }

    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        match self {
            Backend::Gmp | Backend::Portable | Backend::Mpn => true,
            Backend::Ifma => ifma::available(),
        }
    }

    /// Whether the backend can prepare a modulus of `bits` bits on this CPU.
    pub fn supports(self, bits: u32) -> bool {
        match self {
            Backend::Gmp | Backend::Portable | Backend::Mpn => true,
            Backend::Ifma => ifma::available() && bits <= ifma::MAX_BITS,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Gmp => "gmp",
            Backend::Portable => "portable",
            Backend::Ifma => "ifma",
            Backend::Mpn => "mpn",
        }
    }

    /// The backend called `name` (as returned by [`Backend::name`], case-insensitive).
    pub fn from_name(name: &str) -> Option<Backend> {
        Self::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(name.trim()))
    }
}

/// `FERRY_ARITH_BACKEND`, read once per process; unknown names are ignored.
fn env_override() -> Option<Override> {
    static OVERRIDE: OnceLock<Option<Override>> = OnceLock::new();
    *OVERRIDE.get_or_init(|| {
        std::env::var(BACKEND_ENV)
            .ok()
            .and_then(|v| Override::parse(&v))
    })
}

/// Whether `FERRY_ARITH_BACKEND=no-adx` asks the `mpn` backend to keep GMP's rows.
pub(crate) fn adx_disabled_by_env() -> bool {
    env_override() == Some(Override::WithoutIfmaOrAdx)
}

/// What `FERRY_ARITH_BACKEND` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Override {
    /// One backend for every modulus it can handle.
    Backend(Backend),
    /// [`WITHOUT_IFMA`]: each size gets what a CPU without AVX-512 IFMA would choose, so that
    /// an IFMA machine can show (and benchmark) an AVX2-only server's arithmetic.
    WithoutIfma,
    /// [`WITHOUT_IFMA_OR_ADX`]: as a CPU with neither IFMA nor BMI2/ADX (x86-64 before 2014,
    /// or another architecture) would choose, with GMP's rows in the `mpn` backend.
    WithoutIfmaOrAdx,
}

/// `FERRY_ARITH_BACKEND` value that makes [`Backend::best_for`] choose as on a CPU without
/// AVX-512 IFMA (per modulus size: `mpn` or `gmp`).
pub const WITHOUT_IFMA: &str = "no-ifma";

/// `FERRY_ARITH_BACKEND` value that makes [`Backend::best_for`] choose as on a CPU with neither
/// AVX-512 IFMA nor BMI2/ADX, and the `mpn` backend reduce with GMP's rows: the arithmetic
/// before the ADX row, for comparisons in one run.
pub const WITHOUT_IFMA_OR_ADX: &str = "no-adx";

impl Override {
    fn parse(v: &str) -> Option<Override> {
        if v.trim().eq_ignore_ascii_case(WITHOUT_IFMA) {
            Some(Override::WithoutIfma)
        } else if v.trim().eq_ignore_ascii_case(WITHOUT_IFMA_OR_ADX) {
            Some(Override::WithoutIfmaOrAdx)
        } else {
            Backend::from_name(v).map(Override::Backend)
        }
    }
}

/// Errors from preparing a modulus.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArithError {
    #[error("modulus must be odd and greater than 1")]
    BadModulus,
    #[error("backend {0:?} is not available on this CPU or for this modulus size")]
    BackendUnavailable(Backend),
}

/// An element of Z_m in the representation of the modulus' backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Residue(pub(crate) Repr);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Repr {
    Gmp(Integer),
    /// Montgomery form, 64-bit words, canonical.
    Portable(Vec<u64>),
    /// Montgomery form, 52-bit limbs in aligned chunks of eight, canonical.
    Ifma(Vec<ifma::Chunk>),
    /// Montgomery form, 64-bit words (GMP limbs), canonical.
    Mpn(Vec<u64>),
}

/// An odd modulus prepared for repeated multiplication.
#[derive(Clone, Debug)]
pub struct MontModulus {
    modulus: Integer,
    bits: u32,
    inner: Inner,
}

#[derive(Clone, Debug)]
enum Inner {
    Gmp(gmp::GmpModulus),
    Portable(portable::PortableModulus),
    Ifma(ifma::IfmaModulus),
    Mpn(mpn::MpnModulus),
}

#[cold]
#[inline(never)]
fn foreign_residue() -> ! {
    panic!("residue was made by a different backend or modulus")
}

impl MontModulus {
    /// Prepares `modulus` with the best backend available here.
    pub fn new(modulus: &Integer) -> Result<Self, ArithError> {
        Self::with_backend(modulus, Backend::best_for(modulus.significant_bits()))
    }

    /// Prepares `modulus` with a specific backend (tests and benchmarks compare them).
    pub fn with_backend(modulus: &Integer, backend: Backend) -> Result<Self, ArithError> {
        if *modulus <= 1 || modulus.is_even() {
            return Err(ArithError::BadModulus);
        }
        let inner = match backend {
            Backend::Gmp => Inner::Gmp(gmp::GmpModulus::new(modulus)),
            Backend::Portable => Inner::Portable(portable::PortableModulus::new(modulus)),
            Backend::Ifma => Inner::Ifma(
                ifma::IfmaModulus::new(modulus)
                    .ok_or(ArithError::BackendUnavailable(Backend::Ifma))?,
            ),
            Backend::Mpn => Inner::Mpn(mpn::MpnModulus::new(modulus)),
        };
        Ok(MontModulus {
            modulus: modulus.clone(),
            bits: modulus.significant_bits(),
            inner,
        })
    }

    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Gmp(_) => Backend::Gmp,
            Inner::Portable(_) => Backend::Portable,
            Inner::Ifma(_) => Backend::Ifma,
            Inner::Mpn(_) => Backend::Mpn,
        }
    }

    pub fn modulus(&self) -> &Integer {
        &self.modulus
    }

    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// Converts any integer (negative or larger than the modulus too) to a residue.
    pub fn to_residue(&self, x: &Integer) -> Residue {
        let reduced = if *x >= 0 && *x < self.modulus {
            x.clone()
        } else {
            let mut r = x.clone();
            r.modulo_mut(&self.modulus);
            r
        };
        match &self.inner {
            Inner::Gmp(g) => g.residue_of(reduced),
            Inner::Portable(p) => p.residue_of(&reduced),
            Inner::Ifma(f) => f.residue_of(&reduced),
            Inner::Mpn(g) => g.residue_of(&reduced),
        }
    }

    /// The canonical integer in `[0, m)` for a residue.
    pub fn to_integer(&self, r: &Residue) -> Integer {
        match (&self.inner, &r.0) {
            (Inner::Gmp(_), Repr::Gmp(x)) => x.clone(),
            (Inner::Portable(p), Repr::Portable(x)) => p.to_integer(x),
            (Inner::Ifma(f), Repr::Ifma(x)) => f.to_integer(x),
            (Inner::Mpn(g), Repr::Mpn(x)) => g.to_integer(x),
            _ => foreign_residue(),
        }
    }

    /// `value(a) · k mod m` as an integer in `[0, m)`, for `0 <= k < m`. Why: on the `mpn`
    /// backend this is one Montgomery product with `k` taken as it is (the product's `R⁻¹`
    /// cancels the `R` in `a`'s stored form), where a conversion out of Montgomery form
    /// followed by a product and a division would cost about twice as much.
    pub fn mul_to_integer(&self, a: &Residue, k: &Integer) -> Integer {
        assert!(
            *k >= 0 && *k < self.modulus,
            "mul_to_integer takes a factor in [0, m)"
        );
        match (&self.inner, &a.0) {
            (Inner::Mpn(g), Repr::Mpn(x)) => g.mul_to_integer(x, k),
            _ => {
                let mut v = self.to_integer(a) * k;
                v.modulo_mut(&self.modulus);
                v
            }
        }
    }

    /// `R mod m`, the factor in which the `mpn` backend stores residues (`x·R mod m`), or
    /// `None` for the other backends. With [`MontModulus::residue_from_montgomery`] it lets a
    /// caller that computes `x·R mod m` by other means (the CRT) skip the conversion.
    pub fn montgomery_factor(&self) -> Option<Integer> {
        match &self.inner {
            Inner::Mpn(g) => Some(g.montgomery_factor()),
            _ => None,
        }
    }

    /// The residue stored as `stored` (= `x·R mod m` for [`MontModulus::montgomery_factor`]'s
    /// `R`, in `[0, m)`), or `None` where the backend has no such form.
    pub fn residue_from_montgomery(&self, stored: &Integer) -> Option<Residue> {
        assert!(
            *stored >= 0 && *stored < self.modulus,
            "a stored form lies in [0, m)"
        );
        match &self.inner {
            Inner::Mpn(g) => Some(g.residue_from_stored(stored)),
            _ => None,
        }
    }

    /// The residue of 1.
    pub fn one(&self) -> Residue {
        match &self.inner {
            Inner::Gmp(_) => self.to_residue(&Integer::from(1)),
            Inner::Portable(p) => p.one(),
            Inner::Ifma(f) => f.one(),
            Inner::Mpn(g) => g.one(),
        }
    }

    /// `a * b mod m`.
    pub fn mul(&self, a: &Residue, b: &Residue) -> Residue {
        let mut out = a.clone();
        self.mul_assign(&mut out, b);
        out
    }

    /// `a = a * b mod m`.
    pub fn mul_assign(&self, a: &mut Residue, b: &Residue) {
        match (&self.inner, &mut a.0, &b.0) {
            (Inner::Gmp(g), Repr::Gmp(x), Repr::Gmp(y)) => g.mul_assign(x, y),
            (Inner::Portable(p), Repr::Portable(x), Repr::Portable(y)) => p.mul_assign(x, y),
            (Inner::Ifma(f), Repr::Ifma(x), Repr::Ifma(y)) => f.mul_assign(x, y),
            (Inner::Mpn(g), Repr::Mpn(x), Repr::Mpn(y)) => g.mul_assign(x, y),
            _ => foreign_residue(),
        }
    }

    /// `out = a * b mod m`, reusing `out`'s storage when it already holds a residue of this
    /// backend (no allocation per product in loops).
    pub fn mul_into(&self, out: &mut Residue, a: &Residue, b: &Residue) {
        match (&self.inner, &mut out.0, &a.0, &b.0) {
            (Inner::Gmp(g), Repr::Gmp(o), Repr::Gmp(x), Repr::Gmp(y)) => {
                o.assign(x * y);
                g.reduce(o);
            }
            (Inner::Portable(p), Repr::Portable(o), Repr::Portable(x), Repr::Portable(y)) => {
                p.mul_into(o, x, y)
            }
            (Inner::Ifma(f), Repr::Ifma(o), Repr::Ifma(x), Repr::Ifma(y)) => f.mul_into(o, x, y),
            (Inner::Mpn(g), Repr::Mpn(o), Repr::Mpn(x), Repr::Mpn(y)) => g.mul_into(o, x, y),
            _ => {
                // `out` came from elsewhere (e.g. another modulus' `one()`): replace it.
                *out = self.mul(a, b);
            }
        }
    }

    /// `a = a^2 mod m`.
    pub fn square_assign(&self, a: &mut Residue) {
        match (&self.inner, &mut a.0) {
            (Inner::Gmp(g), Repr::Gmp(x)) => g.square_assign(x),
            (Inner::Portable(p), Repr::Portable(x)) => p.square_assign(x),
            (Inner::Ifma(f), Repr::Ifma(x)) => f.square_assign(x),
            (Inner::Mpn(g), Repr::Mpn(x)) => g.square_assign(x),
            _ => foreign_residue(),
        }
    }

    /// `a^2 mod m`.
    pub fn square(&self, a: &Residue) -> Residue {
        let mut out = a.clone();
        self.square_assign(&mut out);
        out
    }

    /// `base^exp mod m` for `exp >= 0` (sliding window; not constant time).
    pub fn pow(&self, base: &Residue, exp: &Integer) -> Residue {
        assert!(*exp >= 0, "MontModulus::pow takes a non-negative exponent");
        match (&self.inner, &base.0) {
            (Inner::Gmp(g), Repr::Gmp(x)) => Residue(Repr::Gmp(g.pow(x, exp))),
            (Inner::Portable(p), Repr::Portable(x)) => Residue(Repr::Portable(p.pow(x, exp))),
            (Inner::Ifma(f), Repr::Ifma(x)) => Residue(Repr::Ifma(f.pow(x, exp))),
            (Inner::Mpn(g), Repr::Mpn(x)) => Residue(Repr::Mpn(g.pow(x, exp))),
            _ => foreign_residue(),
        }
    }

    /// `a^-1 mod m`, or `None` when `gcd(a, m) != 1`.
    pub fn inverse(&self, a: &Residue) -> Option<Residue> {
        let x = self.to_integer(a);
        let inv = x.invert(&self.modulus).ok()?;
        Some(self.to_residue(&inv))
    }

    /// `a^-1` for a residue known to be a unit (ciphertexts are: decoding checks it).
    pub fn unit_inverse(&self, a: &Residue) -> Residue {
        self.inverse(a)
            .expect("a ciphertext residue is a unit of the ring")
    }

    /// `base^k` for a signed `k`; a negative exponent goes through the inverse, which for
    /// the short scalars the schemes use is far cheaper than `φ(m) - |k|`.
    pub fn pow_signed(&self, base: &Residue, k: &Integer) -> Residue {
        if *k >= 0 {
            self.pow(base, k)
        } else {
            self.pow(&self.unit_inverse(base), &Integer::from(-k))
        }
    }

    /// `a^(2^times)`: `times` squarings (a homomorphic shift by `times` bits).
    pub fn square_times(&self, a: &Residue, times: u32) -> Residue {
        let mut c = a.clone();
        for _ in 0..times {
            self.square_assign(&mut c);
        }
        c
    }

    /// Precomputes powers of a fixed base so that `base^e` for `e < 2^max_exp_bits` costs
    /// one multiplication per row of the table and no squarings
    /// ([`FixedBaseTable::widths_for`]).
    pub fn fixed_base_table(&self, base: &Residue, max_exp_bits: u32) -> FixedBaseTable {
        self.fixed_base_table_within(base, max_exp_bits, FixedBaseTable::WIDE_TABLE_BUDGET_BYTES)
    }

    /// [`MontModulus::fixed_base_table`] with its own memory budget for widening the window
    /// (for a caller that has one table where others have several).
    pub fn fixed_base_table_within(
        &self,
        base: &Residue,
        max_exp_bits: u32,
        budget_bytes: u64,
    ) -> FixedBaseTable {
        let widths =
            FixedBaseTable::widths_within(self.backend(), self.bits, max_exp_bits, budget_bytes);
        FixedBaseTable::with_widths(self, base, &widths)
    }
}

/// Sliding-window size (bits) minimising `2^(w-1)` precomputed products plus about
/// `bits / (w + 1)` window products for an exponent of `bits` bits.
fn window_for(bits: u32) -> u32 {
    match bits {
        0..=6 => 1,
        7..=24 => 2,
        25..=80 => 3,
        81..=240 => 4,
        241..=672 => 5,
        673..=1792 => 6,
        1793..=4608 => 7,
        _ => 8,
    }
}

/// Left-to-right sliding-window exponentiation, generic over a backend's internal
/// representation `E` so that the Montgomery backends run it on their raw limbs.
pub(crate) fn sliding_window_pow<E: Clone>(
    base: E,
    exp: &Integer,
    one: impl FnOnce() -> E,
    mut mul: impl FnMut(&mut E, &E),
    mut sqr: impl FnMut(&mut E),
) -> E {
    let bits = exp.significant_bits();
    if bits == 0 {
        return one();
    }
    let w = window_for(bits);
    // odd[i] = base^(2i + 1)
    let mut odd = Vec::with_capacity(1 << (w - 1));
    odd.push(base);
    if w > 1 {
        let mut sq = odd[0].clone();
        sqr(&mut sq);
        for i in 1..(1usize << (w - 1)) {
            let mut next = odd[i - 1].clone();
            mul(&mut next, &sq);
            odd.push(next);
        }
    }
    let mut acc: Option<E> = None;
    let mut i = bits as i64 - 1;
    while i >= 0 {
        if !exp.get_bit(i as u32) {
            if let Some(a) = &mut acc {
                sqr(a);
            }
            i -= 1;
            continue;
        }
        // The window is bits i..=j with j the lowest set bit within w bits of i.
        let mut j = (i - w as i64 + 1).max(0);
        while !exp.get_bit(j as u32) {
            j += 1;
        }
        let mut value = 0usize;
        for b in (j..=i).rev() {
            value = (value << 1) | exp.get_bit(b as u32) as usize;
        }
        match &mut acc {
            None => acc = Some(odd[value >> 1].clone()),
            Some(a) => {
                for _ in j..=i {
                    sqr(a);
                }
                mul(a, &odd[value >> 1]);
            }
        }
        i = j - 1;
    }
    acc.expect("exponent has a set bit")
}

/// Fixed-base exponentiation by a table of `base^(j · 2^(s_i))` (Brickell–Gordon–McCurley–
/// Wilson), one row per window of the exponent: row `i` covers bits `s_i ..< s_i + w_i` and
/// holds `j` in `1..2^(w_i)`.
///
/// Rows may differ in width. Why: a power costs one product per row, and a row costs memory
/// `2^w`, so for a fixed budget the fewest rows come from windows as equal as the exponent's
/// size allows (224 bits in 20 rows of 11 and 12 bits, where whole 11-bit rows need 21), and a
/// table whose exponents are usually short (a fixed-point plaintext) can give its low rows the
/// widest windows ([`FixedBaseTable::widths_within`]).
#[derive(Clone, Debug)]
pub struct FixedBaseTable {
    /// Each row's window in bits, least significant row first.
    widths: Vec<u32>,
    /// Where each row starts: its first bit in the exponent and the index of its first entry
    /// among all entries.
    starts: Vec<RowStart>,
    max_exp_bits: u32,
    /// Entry `(i, j)` is `base^(j · 2^(s_i))` for `j` in `1..2^(w_i)`.
    entries: Entries,
}

#[derive(Clone, Copy, Debug)]
struct RowStart {
    bit: u32,
    entry: usize,
}

/// How a [`FixedBaseTable`] stores its entries.
#[derive(Clone, Debug)]
enum Entries {
    /// `rows[i][j - 1]`, one residue (one allocation) per entry.
    Residues(Vec<Vec<Residue>>),
    /// The `mpn` backend's words of every entry, `words` each, row after row in one
    /// allocation. Why: an entry is 88-256 bytes and a table holds up to 80k of them; one
    /// allocation each added a 24-byte header and the allocator's overhead (about a fifth of
    /// an 88-byte entry) and 80k allocations to every table built, and made each entry a pow
    /// picks two dependent cache misses (the header, then the words) instead of one whose
    /// address the prefetch knows without a load. (Time per encryption changed within the
    /// noise, measured: the prefetch already overlapped most of those misses.)
    Words { words: usize, data: Vec<u64> },
}

/// One entry of a [`FixedBaseTable`], as stored.
#[derive(Clone, Copy)]
enum Entry<'a> {
    Residue(&'a Residue),
    Words(&'a [u64]),
}

impl Entry<'_> {
    fn to_residue(self) -> Residue {
        match self {
            Entry::Residue(r) => r.clone(),
            Entry::Words(w) => Residue(Repr::Mpn(w.to_vec())),
        }
    }

    /// Starts loading this entry's words into the cache (see [`product_of`]).
    fn prefetch_words(self) {
        match self {
            Entry::Words(w) => prefetch_words(w),
            Entry::Residue(r) => match &r.0 {
                Repr::Portable(v) | Repr::Mpn(v) => prefetch_words(v),
                Repr::Ifma(v) => {
                    prefetch_range(v.as_ptr().cast(), std::mem::size_of_val(v.as_slice()))
                }
                Repr::Gmp(_) => {}
            },
        }
    }
}

impl FixedBaseTable {
    /// 8-bit windows: 255 entries per window, one table lookup per byte of exponent.
    pub const DEFAULT_WINDOW: u32 = 8;

    /// Widest window a row may have (14 bits: 16383 entries), and the widest
    /// [`FixedBaseTable::widths_within`] plans.
    pub const MAX_WINDOW: u32 = 14;

    /// Memory a table may take when [`FixedBaseTable::widths_for`] widens its windows (16 MiB,
    /// what Paillier-2048's public table already took at 8-bit windows).
    pub const WIDE_TABLE_BUDGET_BYTES: u64 = 16 << 20;

    /// The row widths of a table for `max_exp_bits`-bit exponents modulo a `modulus_bits`-bit
    /// modulus on `backend`, within [`Self::WIDE_TABLE_BUDGET_BYTES`].
    pub fn widths_for(backend: Backend, modulus_bits: u32, max_exp_bits: u32) -> Vec<u32> {
        Self::widths_within(
            backend,
            modulus_bits,
            max_exp_bits,
            Self::WIDE_TABLE_BUDGET_BYTES,
        )
    }

    /// The row widths of a table for `max_exp_bits`-bit exponents modulo a `modulus_bits`-bit
    /// modulus on `backend`, within `budget_bytes`.
    ///
    /// A pow costs one product per row, so fewer rows are fewer products, but each bit of
    /// window doubles a row. With IFMA a product is cheap enough that the cache misses of a
    /// larger table eat the gain, and uniform 8-bit rows stay. Without IFMA a product costs
    /// 4-5 times more, and the table takes the fewest rows that fit the budget, their windows
    /// as equal as the exponent's size allows (the wider ones lowest, where short exponents
    /// land), none wider than [`Self::MAX_WINDOW`]. If even 8-bit rows do not fit, 8-bit rows
    /// it is. In 16 MiB, OU-2048's `h^r` (224-bit `r`) takes 20 rows of 12 and 11 bits (12.6
    /// MB) where whole 11-bit windows took 21 rows, and Paillier-2048's 224-bit table modulo
    /// `n²` 22 rows where 10-bit windows took 23.
    pub fn widths_within(
        backend: Backend,
        modulus_bits: u32,
        max_exp_bits: u32,
        budget_bytes: u64,
    ) -> Vec<u32> {
        let bits = max_exp_bits.max(1);
        let uniform = |w: u32| vec![w; bits.div_ceil(w) as usize];
        if backend == Backend::Ifma {
            return uniform(Self::DEFAULT_WINDOW);
        }
        (bits.div_ceil(Self::MAX_WINDOW)..=bits.div_ceil(Self::DEFAULT_WINDOW))
            .map(|rows| balanced_widths(bits, rows))
            .find(|widths| Self::table_bytes(modulus_bits, widths) <= budget_bytes)
            .unwrap_or_else(|| uniform(Self::DEFAULT_WINDOW))
    }

    /// Memory of a table with rows of `widths` modulo a `modulus_bits`-bit modulus (the
    /// entries' words; the Montgomery backends store `ceil(bits / 64)` words an entry).
    pub fn table_bytes(modulus_bits: u32, widths: &[u32]) -> u64 {
        let entry_bytes = u64::from(modulus_bits.div_ceil(64)) * 8;
        widths
            .iter()
            .map(|&w| ((1u64 << w) - 1) * entry_bytes)
            .sum()
    }

    /// A table of rows of `window` bits for exponents up to `max_exp_bits` bits.
    pub fn new(m: &MontModulus, base: &Residue, max_exp_bits: u32, window: u32) -> Self {
        let rows = max_exp_bits.div_ceil(window.max(1)).max(1) as usize;
        Self::with_widths(m, base, &vec![window; rows])
    }

    /// A table whose rows, least significant first, have windows of `widths` bits: it takes
    /// exponents up to their sum in bits.
    pub fn with_widths(m: &MontModulus, base: &Residue, widths: &[u32]) -> Self {
        assert!(
            !widths.is_empty() && widths.iter().all(|w| (1..=Self::MAX_WINDOW).contains(w)),
            "a table needs rows of 1..={} bits",
            Self::MAX_WINDOW
        );
        let mut starts = Vec::with_capacity(widths.len());
        let (mut bit, mut entry) = (0u32, 0usize);
        for &w in widths {
            starts.push(RowStart { bit, entry });
            bit += w;
            entry += (1usize << w) - 1;
        }
        let mpn_words = match &m.inner {
            Inner::Mpn(g) => Some(g.words()),
            _ => None,
        };
        let mut rows = Vec::new();
        let mut data = Vec::new();
        if let Some(words) = mpn_words {
            data.reserve_exact(entry * words);
        }
        // Each entry goes straight to its storage: the mpn backend's words into the flat
        // table, other backends' residues into their row.
        let mut store = |row: &mut Vec<Residue>, r: &Residue| match (mpn_words, &r.0) {
            (Some(_), Repr::Mpn(w)) => data.extend_from_slice(w),
            (Some(_), _) => foreign_residue(),
            (None, _) => row.push(r.clone()),
        };
        let mut row_base = base.clone();
        for &w in widths {
            let per_row = (1usize << w) - 1;
            let mut row = Vec::with_capacity(if mpn_words.is_some() { 0 } else { per_row });
            let mut acc = row_base.clone();
            store(&mut row, &acc);
            for _ in 1..per_row {
                m.mul_assign(&mut acc, &row_base);
                store(&mut row, &acc);
            }
            // next row's base = row_base^(2^w) = acc * row_base
            m.mul_assign(&mut acc, &row_base);
            row_base = acc;
            if mpn_words.is_none() {
                rows.push(row);
            }
        }
        FixedBaseTable {
            widths: widths.to_vec(),
            starts,
            max_exp_bits: bit,
            entries: match mpn_words {
                Some(words) => Entries::Words { words, data },
                None => Entries::Residues(rows),
            },
        }
    }

    /// Entry `base^(j · 2^(s_row))`, `1 <= j < 2^(w_row)`.
    fn entry(&self, row: usize, j: usize) -> Entry<'_> {
        match &self.entries {
            Entries::Residues(rows) => Entry::Residue(&rows[row][j - 1]),
            Entries::Words { words, data } => {
                let at = (self.starts[row].entry + j - 1) * words;
                Entry::Words(&data[at..at + words])
            }
        }
    }

    /// Largest exponent size (bits) this table handles.
    pub fn max_exp_bits(&self) -> u32 {
        self.max_exp_bits
    }

    /// Each row's window in bits, least significant row first.
    pub fn widths(&self) -> &[u32] {
        &self.widths
    }

    /// `base^exp mod m` for `0 <= exp < 2^max_exp_bits`.
    pub fn pow(&self, m: &MontModulus, exp: &Integer) -> Residue {
        assert!(
            *exp >= 0 && exp.significant_bits() <= self.max_exp_bits,
            "exponent out of table range"
        );
        product_of(m, &self.unsigned_picks(&exp.to_digits::<u64>(Order::Lsf)))
    }

    /// The entries an exponent (its 64-bit words, least significant first) picks by unsigned
    /// digits: one per row with a non-zero digit.
    fn unsigned_picks(&self, digits: &[u64]) -> Vec<Entry<'_>> {
        let mut picked = Vec::with_capacity(self.widths.len());
        for (i, (&w, start)) in self.widths.iter().zip(&self.starts).enumerate() {
            let Some(d) = bits_at(digits, start.bit, w) else {
                break;
            };
            if d != 0 {
                picked.push(self.entry(i, d as usize));
            }
        }
        picked
    }

    /// `base^exp mod m` for a signed `exp` with `|exp| < 2^max_exp_bits`, from this table
    /// (`base`) and `inverse`, the same-shaped table of `base⁻¹`, by signed window digits.
    ///
    /// Why: [`Self::pow`] costs one product per non-zero window, and a packed plaintext with
    /// negative slots (which borrow from the slot above, [`crate::packing`]) is a long run of
    /// one bits between its values, so nearly every window is non-zero. Written with digits in
    /// `[-2^(w-1), 2^(w-1))` such a run is zeros: a digit `d ≥ 2^(w-1)` becomes `d - 2^w`
    /// with a carry into the next window, and a negative digit takes its entry from the
    /// inverse table. For a random exponent it costs the same as [`Self::pow`]; for an
    /// 8-column LR row it needs about a third of the products. Whichever of the signed and
    /// the unsigned digits pick fewer entries is taken: a short exponent whose top window is
    /// at least half full would otherwise carry into one more row (a fixed-point `-3.25`, 42
    /// bits, in three 14-bit rows).
    pub fn pow_signed(&self, inverse: &FixedBaseTable, m: &MontModulus, exp: &Integer) -> Residue {
        assert!(
            self.widths == inverse.widths,
            "a base's table and its inverse's must have the same shape"
        );
        let (pos, neg) = if *exp >= 0 {
            (self, inverse)
        } else {
            (inverse, self)
        };
        let magnitude = Integer::from(exp.abs_ref());
        assert!(
            magnitude.significant_bits() <= self.max_exp_bits,
            "exponent out of table range"
        );
        let digits = magnitude.to_digits::<u64>(Order::Lsf);
        let mut picked = Vec::with_capacity(self.widths.len());
        let mut carry = 0u64;
        for (i, (&w, start)) in self.widths.iter().zip(&self.starts).enumerate() {
            let d = match bits_at(&digits, start.bit, w) {
                Some(d) => d,
                None if carry == 0 => break,
                None => 0,
            };
            let d = d + carry;
            if d >= 1u64 << (w - 1) {
                // d - 2^w, negative (d ≤ 2^w); the carry makes up the 2^w.
                carry = 1;
                let neg_digit = (1u64 << w) - d;
                if neg_digit != 0 {
                    picked.push(neg.entry(i, neg_digit as usize));
                }
            } else {
                carry = 0;
                if d != 0 {
                    picked.push(pos.entry(i, d as usize));
                }
            }
        }
        // The unsigned digits always fit, also where the recoding ran past the table's top row
        // (an exponent whose top window is at least half full).
        let unsigned = pos.unsigned_picks(&digits);
        if carry != 0 || unsigned.len() < picked.len() {
            return product_of(m, &unsigned);
        }
        product_of(m, &picked)
    }
}

/// `bits` bits split into `rows` windows as equal as can be, the wider ones first.
fn balanced_widths(bits: u32, rows: u32) -> Vec<u32> {
    let (narrow, wider) = (bits / rows, bits % rows);
    (0..rows)
        .map(|i| if i < wider { narrow + 1 } else { narrow })
        .collect()
}

/// Bits `bit ..< bit + w` (`w ≤ 64`) of the number whose 64-bit words, least significant
/// first, are `digits`; `None` once `bit` is past the last word.
fn bits_at(digits: &[u64], bit: u32, w: u32) -> Option<u64> {
    let (word, shift) = ((bit / 64) as usize, bit % 64);
    let mut d = *digits.get(word)? >> shift;
    if shift + w > 64
        && let Some(next) = digits.get(word + 1)
    {
        d |= next << (64 - shift);
    }
    Some(if w == 64 { d } else { d & ((1u64 << w) - 1) })
}

/// The product of table entries. Why prefetch: a table is megabytes (OU-2048's `h^r` table is
/// 7-67 MB without IFMA) and the exponent is random, so every entry is a cache miss, and the
/// misses cost about as much as the products (A/B without IFMA: an OU owner encryption took 38
/// µs without prefetching, 23 µs with). Touching every picked entry before the first product
/// lets the misses overlap instead of each waiting for the product before it. Two passes
/// because an entry is a small header pointing at its words.
///
/// The `mpn` backend's flat tables prefetch [`PREFETCH_AHEAD`] entries before the first
/// product and then one more entry per product instead ([`mpn::MpnModulus::product`]): an
/// OU-2048 public encryption's 17-20 entries are 68-80 cache lines, more than the core
/// tracks at once, and the ones it drops come in late. Measured without IFMA: 16 µs instead
/// of 17 µs an encryption with the 67 MB table.
fn product_of(m: &MontModulus, picked: &[Entry<'_>]) -> Residue {
    let Some((&first, rest)) = picked.split_first() else {
        return m.one();
    };
    if let (Inner::Mpn(g), Entry::Words(w)) = (&m.inner, first) {
        let words: Vec<&[u64]> = rest
            .iter()
            .map(|e| match e {
                Entry::Words(w) => *w,
                Entry::Residue(_) => foreign_residue(),
            })
            .collect();
        first.prefetch_words();
        for e in words.iter().take(PREFETCH_AHEAD) {
            prefetch_words(e);
        }
        return Residue(Repr::Mpn(g.product(w, &words)));
    }
    for &e in picked {
        if let Entry::Residue(r) = e {
            prefetch(std::ptr::from_ref::<Residue>(r).cast());
        }
    }
    for &e in picked {
        e.prefetch_words();
    }
    // Only the mpn backend's tables store words, and they took the branch above.
    let mut acc = first.to_residue();
    for &e in rest {
        match e {
            Entry::Residue(r) => m.mul_assign(&mut acc, r),
            Entry::Words(_) => foreign_residue(),
        }
    }
    acc
}

/// How many table entries ahead of the product that needs them [`product_of`] prefetches on
/// the `mpn` backend (1 to 5 measured the same within the noise; 4 leaves room for slower
/// memory).
const PREFETCH_AHEAD: usize = 4;

/// Starts loading every cache line of `words`.
fn prefetch_words(words: &[u64]) {
    prefetch_range(words.as_ptr().cast(), std::mem::size_of_val(words));
}

/// Starts loading every cache line of the `bytes` bytes at `ptr`.
fn prefetch_range(ptr: *const u8, bytes: usize) {
    for offset in (0..bytes).step_by(64) {
        prefetch(ptr.wrapping_add(offset));
    }
}

/// Asks the CPU to start loading the cache line at `p` (a hint: no effect on results, and
/// nothing where the architecture has no such instruction).
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint that never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests;
