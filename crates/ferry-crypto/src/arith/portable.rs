//! Portable Montgomery backend: 64-bit limbs, `u128` products, no division per product.
//!
//! A modulus of `s` 64-bit words uses `R = 2^(64s)`. A residue `x` is stored as `x·R mod m`
//! in `[0, m)` (canonical, so limb equality is value equality), `s` words least
//! significant first. The Montgomery constant is `m' = -m⁻¹ mod 2^64`.
//!
//! The product is coarsely integrated operand scanning (CIOS) with the multiplication and
//! reduction loops fused: for each word `b_i`, `q = (t_0 + a_0·b_i)·m'` is known up front, so
//! one pass over `j` adds both `a_j·b_i` and `m_j·q` with two independent carry chains and
//! shifts `t` down one word at the same time. `t < 2m` holds after every step, so it fits in
//! `s + 1` words; one conditional subtraction at the end makes the result canonical.

use super::{Repr, Residue};
use rug::Integer;
use rug::integer::Order;

/// Moduli up to this many words use a stack buffer for the product.
const STACK_WORDS: usize = 128;

#[derive(Clone, Debug)]
pub(crate) struct PortableModulus {
    m: Vec<u64>,
    /// `-m⁻¹ mod 2^64`.
    minv: u64,
    /// `R mod m`.
    one: Vec<u64>,
    /// `R² mod m`.
    rr: Vec<u64>,
    /// The plain integer 1.
    unit: Vec<u64>,
}

fn to_words(x: &Integer, s: usize) -> Vec<u64> {
    let mut w = x.to_digits::<u64>(Order::Lsf);
    debug_assert!(w.len() <= s);
    w.resize(s, 0);
    w
}

/// `a + b·c + d` as (low, high) words; cannot overflow 128 bits.
#[inline(always)]
fn mac(a: u64, b: u64, c: u64, d: u64) -> (u64, u64) {
    let t = a as u128 + (b as u128) * (c as u128) + d as u128;
    (t as u64, (t >> 64) as u64)
}

/// `t[..s] = a·b·R⁻¹ mod m` (canonical) using `t` (length `s + 1`) as the accumulator.
#[inline(always)]
fn mont_mul(t: &mut [u64], a: &[u64], b: &[u64], m: &[u64], minv: u64) {
    let s = m.len();
    assert!(
        a.len() == s && b.len() == s && t.len() == s + 1,
        "residue does not belong to this modulus"
    );
    t.fill(0);
    let (a0, m0) = (a[0], m[0]);
    for &bi in b {
        let (x0, mut c1) = mac(t[0], a0, bi, 0);
        let q = x0.wrapping_mul(minv);
        let (_, mut c2) = mac(x0, m0, q, 0); // low word is zero by the choice of q
        // Iterators instead of indices: no bounds checks in the hot loop. `prev` trails one
        // word behind, which performs the division by 2^64 in place.
        let (t0, rest) = t.split_at_mut(1);
        let mut prev = &mut t0[0];
        for ((tj, &aj), &mj) in rest[..s - 1].iter_mut().zip(&a[1..]).zip(&m[1..]) {
            let (x, h1) = mac(*tj, aj, bi, c1);
            let (y, h2) = mac(x, mj, q, c2);
            c1 = h1;
            c2 = h2;
            *prev = y;
            prev = tj;
        }
        let top = t[s] as u128 + c1 as u128 + c2 as u128;
        t[s - 1] = top as u64;
        t[s] = (top >> 64) as u64;
    }
    // t < 2m: subtract m once if t >= m.
    let ge = t[s] != 0 || {
        let mut ge = true; // equal counts as >=
        for j in (0..s).rev() {
            if t[j] != m[j] {
                ge = t[j] > m[j];
                break;
            }
        }
        ge
    };
    if ge {
        let mut borrow = false;
        for j in 0..s {
            let (d, b1) = t[j].overflowing_sub(m[j]);
            let (d, b2) = d.overflowing_sub(borrow as u64);
            t[j] = d;
            borrow = b1 | b2;
        }
    }
}

impl PortableModulus {
    pub(crate) fn new(modulus: &Integer) -> Self {
        let s = modulus.significant_bits().div_ceil(64) as usize;
        let m = to_words(modulus, s);
        let m0 = m[0];
        let mut inv: u64 = m0; // correct to 3 bits for odd m0; Newton doubles that each step
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(m0.wrapping_mul(inv)));
        }
        let r = Integer::from(Integer::u_pow_u(2, 64 * s as u32)) % modulus;
        let rr = Integer::from(&r * &r) % modulus;
        let mut unit = vec![0u64; s];
        unit[0] = 1;
        PortableModulus {
            one: to_words(&r, s),
            rr: to_words(&rr, s),
            m,
            minv: inv.wrapping_neg(),
            unit,
        }
    }

    /// `out = a·b·R⁻¹ mod m` (canonical); `out` must not overlap the inputs.
    #[inline]
    fn mul_to(&self, out: &mut [u64], a: &[u64], b: &[u64]) {
        let s = self.m.len();
        if s <= STACK_WORDS {
            let mut t = [0u64; STACK_WORDS + 1];
            mont_mul(&mut t[..s + 1], a, b, &self.m, self.minv);
            out.copy_from_slice(&t[..s]);
        } else {
            let mut t = vec![0u64; s + 1];
            mont_mul(&mut t, a, b, &self.m, self.minv);
            out.copy_from_slice(&t[..s]);
        }
    }

    /// `a = f(a)` through a temporary (the kernels need `out` distinct from their inputs).
    #[inline]
    fn assign_via_temp(&self, a: &mut [u64], f: impl FnOnce(&mut [u64], &[u64])) {
        let s = a.len();
        if s <= STACK_WORDS {
            let mut tmp = [0u64; STACK_WORDS];
            f(&mut tmp[..s], a);
            a.copy_from_slice(&tmp[..s]);
        } else {
            let mut tmp = vec![0u64; s];
            f(&mut tmp, a);
            a.copy_from_slice(&tmp);
        }
    }

    pub(crate) fn residue_of(&self, x: &Integer) -> Residue {
        let mut v = to_words(x, self.m.len());
        self.mul_assign(&mut v, &self.rr);
        Residue(Repr::Portable(v))
    }

    pub(crate) fn to_integer(&self, x: &[u64]) -> Integer {
        let mut v = x.to_vec();
        self.mul_assign(&mut v, &self.unit);
        Integer::from_digits(&v, Order::Lsf)
    }

    pub(crate) fn one(&self) -> Residue {
        Residue(Repr::Portable(self.one.clone()))
    }

    pub(crate) fn mul_assign(&self, a: &mut [u64], b: &[u64]) {
        self.assign_via_temp(a, |out, a| self.mul_to(out, a, b));
    }

    pub(crate) fn mul_into(&self, out: &mut Vec<u64>, a: &[u64], b: &[u64]) {
        out.resize(self.m.len(), 0);
        self.mul_to(out, a, b);
    }

    pub(crate) fn square_assign(&self, a: &mut [u64]) {
        self.assign_via_temp(a, |out, a| self.mul_to(out, a, a));
    }

    pub(crate) fn pow(&self, base: &[u64], exp: &Integer) -> Vec<u64> {
        super::sliding_window_pow(
            base.to_vec(),
            exp,
            || self.one.clone(),
            |a: &mut Vec<u64>, b: &Vec<u64>| self.mul_assign(a, b),
            |a: &mut Vec<u64>| self.square_assign(a),
        )
    }
}
