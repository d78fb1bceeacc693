//! Hashing to short Weierstrass curves of prime order by RFC 9380 ("Hashing to Elliptic
//! Curves"): `expand_message_xmd` (§5.3.1), `hash_to_field` (§5.2) and the simplified
//! Shallue–van de Woestijne–Ulas map (§6.6.2, the straight-line form of Appendix F.2 with the
//! `sqrt_ratio` of F.2.1.2 for fields with `q ≡ 3 (mod 4)`), combined into the random-oracle
//! construction `hash_to_curve` (§3): `u0, u1 = hash_to_field(msg, 2)`,
//! `P = map(u0) + map(u1)`, and no cofactor clearing because the curves used here have
//! cofactor 1.
//!
//! The code is generic over the hash (any fixed-output `Digest` with a block size, as §5.3.1
//! requires of H) and the curve (a RustCrypto `primeorder` curve whose coefficients `A` and
//! `B` are both non-zero, so no isogeny is needed). It serves SM2 with SM3
//! ([`crate::ecdh::Sm2Sm3`]), for which no published test vectors exist; the tests therefore
//! run the same code on P-256 with SHA-256 against RFC 9380's vectors for the suite
//! `P256_XMD:SHA-256_SSWU_RO_` (Appendix J.1.1) and `expand_message_xmd` with SHA-256
//! (Appendix K.1).
//!
//! Every step on field elements is constant-time in the input (selections instead of
//! branches; the one exponentiation has a public exponent): the identifiers being hashed are
//! private to the party hashing them.

use primeorder::PrimeCurveParams;
use primeorder::elliptic_curve::ff::PrimeField;
use primeorder::elliptic_curve::point::AffineCoordinates;
use primeorder::elliptic_curve::subtle::{Choice, ConstantTimeEq};
use primeorder::{AffinePoint, ProjectivePoint};
use sha2::digest::Digest;
use sha2::digest::block_api::BlockSizeUser;

/// Bytes of uniform output per field element for a 256-bit field at 128-bit security:
/// `L = ceil((ceil(log2 p) + k) / 8) = ceil((256 + 128) / 8) = 48` (RFC 9380 §5.1). The excess
/// of 128 bits over the modulus makes the bias of `OS2IP(bytes) mod p` negligible (2^-128).
pub const FIELD_BYTES_L: usize = 48;

/// Why `expand_message_xmd` refused its arguments (RFC 9380 §5.3.1 step 2). Only a programming
/// error can trigger either: the domain separation tags and output lengths are constants.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExpandError {
    #[error(
        "domain separation tag of {0} bytes: RFC 9380 needs 1 to 255 (hash a longer one first)"
    )]
    DstLength(usize),
    #[error(
        "{0} output bytes asked of expand_message_xmd: at most 255 hash outputs and 65535 bytes"
    )]
    OutputLength(usize),
}

/// `expand_message_xmd(msg, DST, len_in_bytes)` of RFC 9380 §5.3.1 with hash `D`.
pub fn expand_message_xmd<D: Digest + BlockSizeUser>(
    msg: &[u8],
    dst: &[u8],
    len_in_bytes: usize,
) -> Result<Vec<u8>, ExpandError> {
    let b_in_bytes = <D as Digest>::output_size();
    let s_in_bytes = <D as BlockSizeUser>::block_size();
    let ell = len_in_bytes.div_ceil(b_in_bytes);
    if ell > 255 || len_in_bytes > 65535 || len_in_bytes == 0 {
        return Err(ExpandError::OutputLength(len_in_bytes));
    }
    if dst.is_empty() || dst.len() > 255 {
        return Err(ExpandError::DstLength(dst.len()));
    }
    let dst_len = [dst.len() as u8];
    // msg_prime = Z_pad || msg || I2OSP(len_in_bytes, 2) || I2OSP(0, 1) || DST_prime
    let mut h = D::new();
    h.update(vec![0u8; s_in_bytes]);
    h.update(msg);
    h.update((len_in_bytes as u16).to_be_bytes());
    h.update([0u8]);
    h.update(dst);
    h.update(dst_len);
    let b0 = h.finalize();

    let mut out = Vec::with_capacity(ell * b_in_bytes);
    // b_1 = H(b_0 || I2OSP(1, 1) || DST_prime); b_i = H(strxor(b_0, b_(i-1)) || I2OSP(i, 1) || DST_prime)
    let mut prev = vec![0u8; b_in_bytes];
    for i in 1..=ell {
        let mut h = D::new();
        let mixed: Vec<u8> = b0.iter().zip(&prev).map(|(a, b)| a ^ b).collect();
        h.update(&mixed);
        h.update([i as u8]);
        h.update(dst);
        h.update(dst_len);
        prev = h.finalize().to_vec();
        out.extend_from_slice(&prev);
    }
    out.truncate(len_in_bytes);
    Ok(out)
}

/// The constants of the simplified SWU map for `y² = x³ + A·x + B` over a prime field `F`
/// with `p ≡ 3 (mod 4)`, derived once from `A`, `B` and `Z` (and checked).
#[derive(Clone, Debug)]
pub struct Sswu<F> {
    a: F,
    b: F,
    z: F,
    /// `c1 = (p - 3) / 4`, little-endian limbs: the exponent of `sqrt_ratio` (F.2.1.2).
    c1: [u64; 4],
    /// `c2 = sqrt(-Z)`.
    c2: F,
    /// `2^192`, to reduce 48 uniform bytes modulo `p` in two 24-byte halves.
    two_192: F,
}

impl<F: PrimeField> Sswu<F> {
    /// Panics unless `F` is a 193- to 256-bit prime field with `p ≡ 3 (mod 4)` and big-endian
    /// 32-byte encodings, `A` and `B` are non-zero and `-Z` is a square (true of every valid
    /// `Z`: RFC 9380 requires `Z` to be a non-square, and `-1` is a non-square when
    /// `p ≡ 3 (mod 4)`). These are properties of constants, so a panic is a programming error
    /// caught by the first test that hashes.
    pub fn new(a: F, b: F, z: F) -> Self {
        let one = F::ONE.to_repr();
        assert!(
            one.as_ref().len() == 32 && one.as_ref()[31] == 1,
            "field encodings must be 32 bytes, big-endian"
        );
        assert!(
            F::NUM_BITS > 192 && F::NUM_BITS <= 256,
            "256-bit field expected"
        );
        assert!(
            bool::from(!a.is_zero() & !b.is_zero()),
            "simplified SWU needs A != 0 and B != 0"
        );
        // p - 1 as bytes; p ≡ 3 (mod 4) means p - 1 ≡ 2 (mod 4), and then
        // (p - 3) / 4 = floor((p - 1) / 4).
        let p_minus_1 = (-F::ONE).to_repr();
        let be = p_minus_1.as_ref();
        assert_eq!(be[31] & 3, 2, "sqrt_ratio here needs p ≡ 3 (mod 4)");
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            let start = 32 - 8 * (i + 1);
            *limb = u64::from_be_bytes(be[start..start + 8].try_into().expect("8 bytes"));
        }
        for i in 0..4 {
            let carry = if i < 3 { limbs[i + 1] << 62 } else { 0 };
            limbs[i] = (limbs[i] >> 2) | carry;
        }
        let c2 = Option::<F>::from((-z).sqrt()).expect("-Z must be a square");
        Sswu {
            a,
            b,
            z,
            c1: limbs,
            c2,
            two_192: F::from(2u64).pow_vartime([192u64]),
        }
    }

    /// `hash_to_field(msg, count)` of RFC 9380 §5.2 with `expand_message_xmd` over `D`
    /// and `L` = [`FIELD_BYTES_L`].
    pub fn hash_to_field<D: Digest + BlockSizeUser, const N: usize>(
        &self,
        msg: &[u8],
        dst: &[u8],
    ) -> Result<[F; N], ExpandError> {
        let uniform = expand_message_xmd::<D>(msg, dst, N * FIELD_BYTES_L)?;
        Ok(std::array::from_fn(|i| {
            let tv = &uniform[i * FIELD_BYTES_L..(i + 1) * FIELD_BYTES_L];
            // OS2IP(tv) mod p = hi · 2^192 + lo, each half below 2^192 < p.
            self.half(&tv[..24]) * self.two_192 + self.half(&tv[24..])
        }))
    }

    /// A 24-byte big-endian integer (below `p`) as a field element.
    fn half(&self, bytes: &[u8]) -> F {
        let mut repr = F::Repr::default();
        repr.as_mut()[8..].copy_from_slice(bytes);
        Option::from(F::from_repr(repr)).expect("a 192-bit integer is below p")
    }

    /// `sqrt_ratio(u, v)` for `q ≡ 3 (mod 4)` (RFC 9380 F.2.1.2): `(true, sqrt(u/v))` if
    /// `u/v` is a square, else `(false, sqrt(Z·u/v))`.
    fn sqrt_ratio(&self, u: &F, v: &F) -> (Choice, F) {
        let tv1 = v.square();
        let tv2 = *u * v;
        let tv1 = tv1 * tv2;
        let y1 = tv1.pow_vartime(self.c1) * tv2;
        let y2 = y1 * self.c2;
        let tv3 = y1.square() * v;
        let is_qr = tv3.ct_eq(u);
        (is_qr, F::conditional_select(&y2, &y1, is_qr))
    }

    /// `map_to_curve_simple_swu(u)` (RFC 9380 §6.6.2, straight-line form of Appendix F.2):
    /// affine `(x, y)` on the curve for any field element `u`.
    pub fn map_to_curve(&self, u: &F) -> (F, F) {
        let (a, b, z) = (&self.a, &self.b, &self.z);
        let tv1 = *z * u.square();
        let mut tv2 = tv1.square();
        tv2 += tv1;
        let tv3 = *b * (tv2 + F::ONE);
        // tv2 = 0 only when Z·u² ∈ {0, -1}; then x = B / (Z·A), which the constant choice of Z
        // makes a valid abscissa.
        let tv4 = *a * F::conditional_select(&-tv2, z, tv2.is_zero());
        let tv6 = tv4.square();
        let gx_num = (tv3.square() + *a * tv6) * tv3 + *b * tv6 * tv4;
        let gx_den = tv6 * tv4;
        let (is_gx1_square, y1) = self.sqrt_ratio(&gx_num, &gx_den);
        let x_num = F::conditional_select(&(tv1 * tv3), &tv3, is_gx1_square);
        let y = F::conditional_select(&(tv1 * u * y1), &y1, is_gx1_square);
        let same_sign = u.is_odd().ct_eq(&y.is_odd());
        let y = F::conditional_select(&-y, &y, same_sign);
        // tv4 ≠ 0: A ≠ 0, and Z ≠ 0 stands in when tv2 = 0.
        let x = x_num * Option::<F>::from(tv4.invert()).expect("tv4 is non-zero");
        (x, y)
    }
}

/// A point of the curve from affine coordinates the map produced. The curve equation is
/// checked again by `from_coordinates`: the map always satisfies it, and a failure would be a
/// wrong constant, which should stop the program rather than hash to a point off the curve.
fn affine_from<C>(x: &C::FieldElement, y: &C::FieldElement) -> AffinePoint<C>
where
    C: PrimeCurveParams,
{
    Option::from(AffinePoint::<C>::from_coordinates(
        &x.to_repr(),
        &y.to_repr(),
    ))
    .expect("simplified SWU always lands on the curve")
}

/// `hash_to_curve(msg)` of RFC 9380 §3 (random-oracle construction) for curve `C` with hash
/// `D` and the map constants `sswu`; `C` must have cofactor 1 (`clear_cofactor` is then the
/// identity).
pub fn hash_to_curve<C, D>(
    sswu: &Sswu<C::FieldElement>,
    msg: &[u8],
    dst: &[u8],
) -> Result<ProjectivePoint<C>, ExpandError>
where
    C: PrimeCurveParams,
    C::FieldElement: PrimeField<Repr = primeorder::elliptic_curve::FieldBytes<C>>,
    D: Digest + BlockSizeUser,
{
    let [u0, u1] = sswu.hash_to_field::<D, 2>(msg, dst)?;
    let (x0, y0) = sswu.map_to_curve(&u0);
    let (x1, y1) = sswu.map_to_curve(&u1);
    let q0 = ProjectivePoint::<C>::from(affine_from::<C>(&x0, &y0));
    Ok(q0 + affine_from::<C>(&x1, &y1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use primeorder::elliptic_curve::sec1::ToSec1Point;

    type P256Field =
        <p256::NistP256 as primeorder::elliptic_curve::hazmat::FieldArithmetic>::FieldElement;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn p256_sswu() -> Sswu<P256Field> {
        Sswu::new(
            p256::NistP256::EQUATION_A,
            p256::NistP256::EQUATION_B,
            -P256Field::from(10u64),
        )
    }

    /// RFC 9380 Appendix K.1: expand_message_xmd(SHA-256), 32- and 128-byte outputs.
    #[test]
    fn expand_message_xmd_matches_rfc_9380_sha256_vectors() {
        let dst = b"QUUX-V01-CS02-with-expander-SHA256-128";
        let cases = [
            (
                &b""[..],
                0x20,
                "68a985b87eb6b46952128911f2a4412bbc302a9d759667f87f7a21d803f07235",
            ),
            (
                b"abc",
                0x20,
                "d8ccab23b5985ccea865c6c97b6e5b8350e794e603b4b97902f53a8a0d605615",
            ),
        ];
        for (msg, len, expected) in cases {
            let out = expand_message_xmd::<sha2::Sha256>(msg, dst, len).unwrap();
            assert_eq!(hex(&out), expected, "msg {msg:?}");
        }
        assert_eq!(
            expand_message_xmd::<sha2::Sha256>(b"x", b"", 32),
            Err(ExpandError::DstLength(0))
        );
        assert_eq!(
            expand_message_xmd::<sha2::Sha256>(b"x", dst, 256 * 32),
            Err(ExpandError::OutputLength(256 * 32))
        );
    }

    /// RFC 9380 Appendix J.1.1, suite P256_XMD:SHA-256_SSWU_RO_: the field elements u0, u1
    /// and the final point P, for three messages.
    #[test]
    fn p256_hash_to_curve_matches_rfc_9380_vectors() {
        let dst = b"QUUX-V01-CS02-with-P256_XMD:SHA-256_SSWU_RO_";
        let vectors = [
            (
                &b""[..],
                "2c15230b26dbc6fc9a37051158c95b79656e17a1a920b11394ca91c44247d3e4",
                "8a7a74985cc5c776cdfe4b1f19884970453912e9d31528c060be9ab5c43e8415",
                "ad5342c66a6dd0ff080df1da0ea1c04b96e0330dd89406465eeba11582515009",
                "8c0f1d43204bd6f6ea70ae8013070a1518b43873bcd850aafa0a9e220e2eea5a",
            ),
            (
                b"abc",
                "0bb8b87485551aa43ed54f009230450b492fead5f1cc91658775dac4a3388a0f",
                "5c41b3d0731a27a7b14bc0bf0ccded2d8751f83493404c84a88e71ffd424212e",
                "afe47f2ea2b10465cc26ac403194dfb68b7f5ee865cda61e9f3e07a537220af1",
                "379a27833b0bfe6f7bdca08e1e83c760bf9a338ab335542704edcd69ce9e46e0",
            ),
            (
                b"abcdef0123456789",
                "65038ac8f2b1def042a5df0b33b1f4eca6bff7cb0f9c6c1526811864e544ed80",
                "cad44d40a656e7aff4002a8de287abc8ae0482b5ae825822bb870d6df9b56ca3",
                "0fad9d125a9477d55cf9357105b0eb3a5c4259809bf87180aa01d651f53d312c",
                "b68597377392cd3419d8fcc7d7660948c8403b19ea78bbca4b133c9d2196c0fb",
            ),
        ];
        let sswu = p256_sswu();
        for (msg, px, py, u0, u1) in vectors {
            let [f0, f1] = sswu.hash_to_field::<sha2::Sha256, 2>(msg, dst).unwrap();
            assert_eq!(hex(&f0.to_repr()), u0, "u0 of {msg:?}");
            assert_eq!(hex(&f1.to_repr()), u1, "u1 of {msg:?}");
            let p = hash_to_curve::<p256::NistP256, sha2::Sha256>(&sswu, msg, dst)
                .unwrap()
                .to_affine()
                .to_sec1_point(false);
            let bytes = p.as_bytes();
            assert_eq!(hex(&bytes[1..33]), px, "P.x of {msg:?}");
            assert_eq!(hex(&bytes[33..65]), py, "P.y of {msg:?}");
        }
    }

    /// The exceptional input `u = 0` (tv2 = 0) takes the `x = B / (Z·A)` branch and still
    /// lands on the curve.
    #[test]
    fn the_exceptional_case_lands_on_the_curve() {
        let sswu = p256_sswu();
        let (x, y) = sswu.map_to_curve(&P256Field::ZERO);
        let _ = affine_from::<p256::NistP256>(&x, &y);
        let expected_x = p256::NistP256::EQUATION_B
            * Option::<P256Field>::from(
                (-P256Field::from(10u64) * p256::NistP256::EQUATION_A).invert(),
            )
            .unwrap();
        assert_eq!(x, expected_x);
    }
}
