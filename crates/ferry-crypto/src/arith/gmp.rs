//! Reference backend: canonical integers, GMP multiplication and division.

use super::{Repr, Residue};
use rug::{Assign, Integer};

#[derive(Clone, Debug)]
pub(crate) struct GmpModulus {
    modulus: Integer,
}

impl GmpModulus {
    pub(crate) fn new(modulus: &Integer) -> Self {
        GmpModulus {
            modulus: modulus.clone(),
        }
    }

    pub(crate) fn residue_of(&self, x: Integer) -> Residue {
        Residue(Repr::Gmp(x))
    }

    pub(crate) fn mul_assign(&self, a: &mut Integer, b: &Integer) {
        *a *= b;
        a.modulo_mut(&self.modulus);
    }

    pub(crate) fn reduce(&self, a: &mut Integer) {
        a.modulo_mut(&self.modulus);
    }

    pub(crate) fn square_assign(&self, a: &mut Integer) {
        a.square_mut();
        a.modulo_mut(&self.modulus);
    }

    pub(crate) fn pow(&self, base: &Integer, exp: &Integer) -> Integer {
        let mut out = Integer::new();
        // exp >= 0 and the modulus is odd > 1, so pow_mod cannot fail.
        out.assign(
            base.pow_mod_ref(exp, &self.modulus)
                .expect("non-negative exponent"),
        );
        out
    }
}
