//! The Chinese national cryptography suite (GM, 国密) as Ferry uses it: SM2, SM3 and SM4 from
//! RustCrypto's `sm2`, `sm3` and `sm4` crates (no primitive is implemented here).
//!
//! | algorithm | standard | used for |
//! |---|---|---|
//! | SM2 curve (`sm2p256v1`) | GB/T 32918.5-2017 | ECDH-PSI group [`crate::ecdh::Sm2Sm3`] |
//! | SM2 signatures (SM2DSA) | GB/T 32918.2-2016 | [`Sm2Signer`]: model signatures of a node under the `gm` suite |
//! | SM3 | GB/T 32905-2016 | hashing to the SM2 curve (RFC 9380 `expand_message_xmd`), SM2DSA's `Z_A` and `e` |
//! | SM4 | GB/T 32907-2016 | the block cipher (known-answer tests here) |
//!
//! The tests are the standards' published examples: SM3 on "abc" and on the 64-byte
//! "abcd…" message (GB/T 32905 Appendix A), SM4 on the example block and its
//! 1,000,000-fold iteration (GB/T 32907 Appendix A), and the SM2 signature example of
//! GB/T 32918.5-2017 Appendix A (the recommended curve, `ID_A = "1234567812345678"`,
//! message "message digest"): the key pair, `Z_A`, `e`, and `(r, s)` for the published `k`
//! (recomputed with the crate's curve arithmetic, since its signer derives `k` by
//! RFC 6979 and accepts no fixed `k`), the crate verifying the published signature, and sign
//! / verify round trips.
//!
//! What the suite does not cover: transport between nodes stays TLS 1.3 with ECDSA P-256
//! certificates (rustls implements no TLCP, the GB/T 38636 protocol with SM2/SM4 cipher
//! suites); KKRT PSI keeps AES-128 and SHA-256 inside its OT extension.

use rand::CryptoRng;
use sm2::dsa::signature::{Signer, Verifier};

/// The distinguishing identifier SM2 signatures hash into `Z_A` when the parties have agreed
/// on no other: `1234567812345678`, the default of GM/T 0009-2012 §10 (and GB/T 35276), which
/// other SM2 implementations also use, so a signature made here verifies there.
pub const SM2_DEFAULT_ID: &str = "1234567812345678";

/// Bytes of an SM2 signature as Ferry stores it: `r || s`, 32 bytes each, big endian.
pub const SM2_SIGNATURE_BYTES: usize = 64;

/// SM3 of `data`.
pub fn sm3(data: &[u8]) -> [u8; 32] {
    use sm3::Digest;
    sm3::Sm3::digest(data).into()
}

/// Why a GM key or signature could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GmError {
    #[error(
        "an SM2 secret key is 32 bytes between 1 and n-1; got {0} bytes or a value out of range"
    )]
    SecretKey(usize),
    #[error("an SM2 public key is a 65-byte uncompressed point (0x04 || x || y) on the curve")]
    PublicKey,
}

/// An SM2 signing key (SM2DSA with SM3, distinguishing identifier [`SM2_DEFAULT_ID`]).
#[derive(Clone)]
pub struct Sm2Signer {
    key: sm2::dsa::SigningKey,
}

impl std::fmt::Debug for Sm2Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Sm2Signer")
            .field("public_key", &hex(&self.public_key()))
            .finish()
    }
}

impl Sm2Signer {
    /// A fresh key from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        use sm2::elliptic_curve::Generate;
        let scalar = sm2::NonZeroScalar::generate_from_rng(rng);
        Self::from_scalar(scalar)
    }

    fn from_scalar(scalar: sm2::NonZeroScalar) -> Self {
        let key = sm2::dsa::SigningKey::from_nonzero_scalar(SM2_DEFAULT_ID, scalar)
            .expect("the default identifier is 16 bytes, far below SM2's limit");
        Sm2Signer { key }
    }

    /// From the 32 secret bytes of [`Sm2Signer::secret_bytes`].
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, GmError> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| GmError::SecretKey(bytes.len()))?;
        let scalar: Option<sm2::NonZeroScalar> = sm2::NonZeroScalar::from_repr(arr.into()).into();
        scalar.map(Self::from_scalar).ok_or(GmError::SecretKey(32))
    }

    /// The secret scalar, big endian: store it like any private key (mode 0600).
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.key.to_bytes().into()
    }

    /// The public key as an uncompressed SEC1 point (65 bytes).
    pub fn public_key(&self) -> Vec<u8> {
        self.key.verifying_key().to_sec1_bytes().to_vec()
    }

    /// `r || s` over `msg` (SM2DSA with SM3; `k` derived deterministically by RFC 6979, as
    /// the crate does).
    pub fn sign(&self, msg: &[u8]) -> [u8; SM2_SIGNATURE_BYTES] {
        let sig: sm2::dsa::Signature = self.key.sign(msg);
        sig.to_bytes().into()
    }

    /// Whether `sig` is this key's signature over `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        sm2_verify(&self.public_key(), msg, sig).unwrap_or(false)
    }
}

/// Whether `sig` (`r || s`) is the SM2 signature of the holder of `public_key` (65-byte
/// uncompressed SEC1) over `msg`, with [`SM2_DEFAULT_ID`]. An unusable public key is an
/// error; a malformed or wrong signature is `false`.
pub fn sm2_verify(public_key: &[u8], msg: &[u8], sig: &[u8]) -> Result<bool, GmError> {
    let key = sm2::dsa::VerifyingKey::from_sec1_bytes(SM2_DEFAULT_ID, public_key)
        .map_err(|_| GmError::PublicKey)?;
    let Ok(sig) = sm2::dsa::Signature::from_slice(sig) else {
        return Ok(false);
    };
    Ok(key.verify(msg, &sig).is_ok())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// GB/T 32905-2016 Appendix A, examples 1 and 2.
    #[test]
    fn sm3_matches_gb_t_32905_examples() {
        assert_eq!(
            sm3(b"abc").to_vec(),
            unhex("66c7f0f4 62eeedd9 d1f2d46b dc10e4e2 4167c487 5cf2f7a2 297da02b 8f4ba8e0")
        );
        assert_eq!(
            sm3(&b"abcd".repeat(16)).to_vec(),
            unhex("debe9ff9 2275b8a1 38604889 c18e5a4d 6fdb70e5 387e5765 293dcba3 9c0c5732")
        );
    }

    /// GB/T 32907-2016 Appendix A: example 1 (one block) and example 2 (the same block
    /// encrypted 1,000,000 times under the same key; a few tenths of a second at opt-level 3,
    /// at which this crate is always built), and decryption back.
    #[test]
    fn sm4_matches_gb_t_32907_examples() {
        use sm4::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
        let key = unhex("01234567 89abcdef fedcba98 76543210");
        let cipher = sm4::Sm4::new_from_slice(&key).unwrap();
        let mut block = sm4::cipher::Block::<sm4::Sm4>::try_from(&key[..]).unwrap();
        cipher.encrypt_block(&mut block);
        assert_eq!(block.to_vec(), unhex("681edf34 d206965e 86b3e94f 536e4246"));
        cipher.decrypt_block(&mut block);
        assert_eq!(block.to_vec(), key);
        for _ in 0..1_000_000 {
            cipher.encrypt_block(&mut block);
        }
        assert_eq!(block.to_vec(), unhex("595298c7 c6fd271f 0402f804 c33d3f66"));
    }

    // GB/T 32918.5-2017 Appendix A (also GM/T 0003.5-2012): signature example on the
    // recommended curve.
    const EX_ID: &str = "1234567812345678";
    const EX_MSG: &[u8] = b"message digest";
    const EX_D: &str = "3945208F 7B2144B1 3F36E38A C6D39F95 88939369 2860B51A 42FB81EF 4DF7C5B8";
    const EX_XA: &str = "09F9DF31 1E5421A1 50DD7D16 1E4BC5C6 72179FAD 1833FC07 6BB08FF3 56F35020";
    const EX_YA: &str = "CCEA490C E26775A5 2DC6EA71 8CC1AA60 0AED05FB F35E084A 6632F607 2DA9AD13";
    const EX_ZA: &str = "B2E14C5C 79C6DF5B 85F4FE7E D8DB7A26 2B9DA7E0 7CCB0EA9 F4747B8C CDA8A4F3";
    const EX_E: &str = "F0B43E94 BA45ACCA ACE692ED 534382EB 17E6AB5A 19CE7B31 F4486FDF C0D28640";
    const EX_K: &str = "59276E27 D506861A 16680F3A D9C02DCC EF3CC1FA 3CDBE4CE 6D54B80D EAC1BC21";
    const EX_X1: &str = "04EBFC71 8E8D1798 62043226 8E77FEB6 415E2EDE 0E073C0F 4F640ECD 2E149A73";
    const EX_R: &str = "F5A03B06 48D2C463 0EEAC513 E1BB81A1 5944DA38 27D5B741 43AC7EAC EEE720B3";
    const EX_S: &str = "B1B6AA29 DF212FD8 763182BC 0D421CA1 BB9038FD 1F7F42D4 840B69C4 85BBC1AA";

    #[test]
    fn sm2_signature_matches_gb_t_32918_example() {
        use sm2::elliptic_curve::PrimeField;
        use sm2::elliptic_curve::ops::Reduce;
        use sm2::elliptic_curve::point::AffineCoordinates;

        let signer = Sm2Signer::from_secret_bytes(&unhex(EX_D)).unwrap();
        let public = signer.public_key();
        assert_eq!(public[0], 0x04);
        assert_eq!(public[1..33].to_vec(), unhex(EX_XA), "x_A = [d_A]G");
        assert_eq!(public[33..].to_vec(), unhex(EX_YA), "y_A = [d_A]G");

        // Z_A = SM3(ENTL_A || ID_A || a || b || x_G || y_G || x_A || y_A), e = SM3(Z_A || M).
        let mut za_input = ((EX_ID.len() * 8) as u16).to_be_bytes().to_vec();
        za_input.extend_from_slice(EX_ID.as_bytes());
        for part in [
            "FFFFFFFE FFFFFFFF FFFFFFFF FFFFFFFF FFFFFFFF 00000000 FFFFFFFF FFFFFFFC",
            "28E9FA9E 9D9F5E34 4D5A9E4B CF6509A7 F39789F5 15AB8F92 DDBCBD41 4D940E93",
            "32C4AE2C 1F198119 5F990446 6A39C994 8FE30BBF F2660BE1 715A4589 334C74C7",
            "BC3736A2 F4F6779C 59BDCEE3 6B692153 D0A9877C C62A4740 02DF32E5 2139F0A0",
        ] {
            za_input.extend(unhex(part));
        }
        za_input.extend_from_slice(&public[1..]);
        let za = sm3(&za_input);
        assert_eq!(za.to_vec(), unhex(EX_ZA));
        let e = sm3(&[&za[..], EX_MSG].concat());
        assert_eq!(e.to_vec(), unhex(EX_E));

        // Signing steps A4-A6 with the published k, on the crate's arithmetic.
        let scalar = |hexs: &str| {
            let bytes: [u8; 32] = unhex(hexs).try_into().unwrap();
            Option::<sm2::Scalar>::from(sm2::Scalar::from_repr(bytes.into())).unwrap()
        };
        let (d, k) = (scalar(EX_D), scalar(EX_K));
        let x1 = (sm2::ProjectivePoint::GENERATOR * k).to_affine().x();
        assert_eq!(x1.to_vec(), unhex(EX_X1));
        let r = <sm2::Scalar as Reduce<sm2::FieldBytes>>::reduce(&e.into())
            + <sm2::Scalar as Reduce<sm2::FieldBytes>>::reduce(&x1);
        let s = (sm2::Scalar::ONE + d).invert().unwrap() * (k - r * d);
        assert_eq!(r.to_repr().to_vec(), unhex(EX_R));
        assert_eq!(s.to_repr().to_vec(), unhex(EX_S));

        // The crate's verifier accepts the published signature, and nothing else.
        let published = [unhex(EX_R), unhex(EX_S)].concat();
        assert_eq!(sm2_verify(&public, EX_MSG, &published), Ok(true));
        assert_eq!(
            sm2_verify(&public, b"message digesT", &published),
            Ok(false)
        );
        let mut bent = published.clone();
        bent[63] ^= 1;
        assert_eq!(sm2_verify(&public, EX_MSG, &bent), Ok(false));
        assert_eq!(sm2_verify(&public, EX_MSG, &published[..63]), Ok(false));
        assert_eq!(
            sm2_verify(&public[..33], EX_MSG, &published),
            Err(GmError::PublicKey)
        );
    }

    #[test]
    fn sm2_signatures_round_trip_and_reject_other_keys_and_messages() {
        let mut rng = ChaCha20Rng::seed_from_u64(32918);
        let signer = Sm2Signer::generate(&mut rng);
        let other = Sm2Signer::generate(&mut rng);
        for msg in [&b""[..], b"model statement", &[0xffu8; 1000][..]] {
            let sig = signer.sign(msg);
            assert!(signer.verify(msg, &sig));
            assert!(!other.verify(msg, &sig));
            assert!(!signer.verify(&[msg, b"x"].concat(), &sig));
        }
        let again = Sm2Signer::from_secret_bytes(&signer.secret_bytes()).unwrap();
        assert_eq!(again.public_key(), signer.public_key());
        assert!(again.verify(b"m", &signer.sign(b"m")));
        assert_eq!(
            Sm2Signer::from_secret_bytes(&[0u8; 32]).unwrap_err(),
            GmError::SecretKey(32)
        );
        assert_eq!(
            Sm2Signer::from_secret_bytes(&[1u8; 31]).unwrap_err(),
            GmError::SecretKey(31)
        );
        assert!(!format!("{signer:?}").contains(&hex(&signer.secret_bytes())));
    }
}
