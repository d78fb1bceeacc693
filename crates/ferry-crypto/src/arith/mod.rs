//! Modular arithmetic for the homomorphic schemes: an odd modulus prepared once
//! ([`MontModulus`]) and residues modulo it ([`Residue`]).
//!
//! Everything above this module (Paillier, Okamoto–Uchiyama) is written against this API
//! only, so the arithmetic backend can change without touching the schemes:
//!
//! * [`Backend::Gmp`] keeps residues as canonical GMP integers and reduces with GMP's
//!   division. It is the reference the other backends are tested against.
//!
//! Residues of one modulus must only be combined with that modulus; mixing moduli is a
//! logic error that debug builds catch with an assertion.

use rug::Integer;
use rug::integer::Order;

mod gmp;

/// Which implementation performs the modular multiplications.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// GMP multiplication followed by GMP division (canonical representation).
    Gmp,
}

impl Backend {
    /// The fastest backend this CPU supports for a modulus of `bits` bits.
    pub fn best_for(_bits: u32) -> Backend {
        Backend::Gmp
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Gmp => "gmp",
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
        };
        Ok(MontModulus { modulus: modulus.clone(), bits: modulus.significant_bits(), inner })
    }

    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Gmp(_) => Backend::Gmp,
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
            Inner::Gmp(g) => g.from_canonical(reduced),
        }
    }

    /// The canonical integer in `[0, m)` for a residue.
    pub fn to_integer(&self, r: &Residue) -> Integer {
        match (&self.inner, &r.0) {
            (Inner::Gmp(_), Repr::Gmp(x)) => x.clone(),
        }
    }

    /// The residue of 1.
    pub fn one(&self) -> Residue {
        self.to_residue(&Integer::from(1))
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
        }
    }

    /// `a = a^2 mod m`.
    pub fn square_assign(&self, a: &mut Residue) {
        match (&self.inner, &mut a.0) {
            (Inner::Gmp(g), Repr::Gmp(x)) => g.square_assign(x),
        }
    }

    /// `base^exp mod m` for `exp >= 0` (sliding window; not constant time).
    pub fn pow(&self, base: &Residue, exp: &Integer) -> Residue {
        assert!(*exp >= 0, "MontModulus::pow takes a non-negative exponent");
        match (&self.inner, &base.0) {
            (Inner::Gmp(g), Repr::Gmp(x)) => Residue(Repr::Gmp(g.pow(x, exp))),
        }
    }

    /// `a^-1 mod m`, or `None` when `gcd(a, m) != 1`.
    pub fn inverse(&self, a: &Residue) -> Option<Residue> {
        let x = self.to_integer(a);
        let inv = x.invert(&self.modulus).ok()?;
        Some(self.to_residue(&inv))
    }

    /// Precomputes powers of a fixed base so that `base^e` for `e < 2^max_exp_bits` costs
    /// about `max_exp_bits / window` multiplications and no squarings.
    pub fn fixed_base_table(&self, base: &Residue, max_exp_bits: u32) -> FixedBaseTable {
        FixedBaseTable::new(self, base, max_exp_bits, FixedBaseTable::DEFAULT_WINDOW)
    }
}

/// Fixed-base exponentiation by a table of `base^(j * 2^(w*i))` (Brickell–Gordon–McCurley–
/// Wilson with windows of `w` bits).
#[derive(Clone, Debug)]
pub struct FixedBaseTable {
    window: u32,
    max_exp_bits: u32,
    /// `rows[i][j - 1] = base^(j * 2^(w*i))` for `j` in `1..2^w`.
    rows: Vec<Vec<Residue>>,
}

impl FixedBaseTable {
    /// 8-bit windows: 255 entries per window, one table lookup per byte of exponent.
    pub const DEFAULT_WINDOW: u32 = 8;

    pub fn new(m: &MontModulus, base: &Residue, max_exp_bits: u32, window: u32) -> Self {
        assert!((1..=12).contains(&window), "window must be 1..=12 bits");
        let windows = max_exp_bits.div_ceil(window).max(1);
        let mut rows = Vec::with_capacity(windows as usize);
        let mut row_base = base.clone();
        for _ in 0..windows {
            let mut row = Vec::with_capacity((1usize << window) - 1);
            let mut acc = row_base.clone();
            row.push(acc.clone());
            for _ in 2..(1u32 << window) {
                m.mul_assign(&mut acc, &row_base);
                row.push(acc.clone());
            }
            // next row's base = row_base^(2^w) = acc * row_base
            m.mul_assign(&mut acc, &row_base);
            row_base = acc;
            rows.push(row);
        }
        FixedBaseTable { window, max_exp_bits: windows * window, rows }
    }

    /// Largest exponent size (bits) this table handles.
    pub fn max_exp_bits(&self) -> u32 {
        self.max_exp_bits
    }

    /// `base^exp mod m` for `0 <= exp < 2^max_exp_bits`.
    pub fn pow(&self, m: &MontModulus, exp: &Integer) -> Residue {
        assert!(*exp >= 0 && exp.significant_bits() <= self.max_exp_bits, "exponent out of table range");
        let digits = exp.to_digits::<u64>(Order::Lsf);
        let w = self.window as usize;
        let mask = (1u64 << w) - 1;
        let mut acc: Option<Residue> = None;
        for (i, row) in self.rows.iter().enumerate() {
            let bit = i * w;
            let word = bit / 64;
            let shift = bit % 64;
            if word >= digits.len() {
                break;
            }
            let mut d = digits[word] >> shift;
            if shift + w > 64 && word + 1 < digits.len() {
                d |= digits[word + 1] << (64 - shift);
            }
            let d = (d & mask) as usize;
            if d != 0 {
                match &mut acc {
                    None => acc = Some(row[d - 1].clone()),
                    Some(a) => m.mul_assign(a, &row[d - 1]),
                }
            }
        }
        acc.unwrap_or_else(|| m.one())
    }
}

#[cfg(test)]
mod tests;
