//! Named security parameters.
//!
//! Every size used by the schemes is derived here, so a reviewer can check one table:
//!
//! | modulus bits | security κ (NIST SP 800-57 Pt 1 Rev 5, Table 2) | randomizer exponent |
//! |---|---|---|
//! | 2048 | 112 | 256 |
//! | 3072 | 128 | 256 |
//! | 4096 | ~152 | 304 |
//!
//! The *randomizer exponent* is the bit length ℓ of the secret exponent `α` in the fast
//! encryption `h^α` of both schemes (see [`crate::paillier`] and [`crate::ou`]). The generic
//! attacks on a short exponent (Pollard's lambda / baby-step giant-step, van Oorschot–Wiener)
//! take about 2^(ℓ/2) group operations, so ℓ = 2κ matches the modulus; we use at least 256.
//!
//! The prime-order groups of ECDH-PSI are in [`GROUPS`]:
//!
//! | group | standard | order bits | security κ | element bytes |
//! |---|---|---|---|---|
//! | ristretto255 (default) | RFC 9496 | 253 | 126 (the "128-bit" class) | 32 |
//! | sm2 (GM suite) | GB/T 32918.5 | 256 | 128 | 33 |

/// A prime-order group for ECDH-PSI, with its security level: the PSI groups' row of the
/// table, next to the moduli above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupParams {
    /// [`crate::ecdh::EcdhGroup::NAME`], as PSI peers announce it.
    pub name: &'static str,
    /// Where the group is defined.
    pub standard: &'static str,
    /// Bits of the prime group order.
    pub order_bits: u32,
    /// Security κ in bits: Pollard's rho takes about `sqrt(π·n/4)` ≈ 2^(order_bits/2)
    /// group operations, the best known attack on discrete logarithms (and so on DDH) in
    /// these groups.
    pub security_bits: u32,
    /// Bytes of an encoded element on the wire.
    pub element_bytes: usize,
    /// How identifiers are hashed to the group.
    pub hash_to_group: &'static str,
}

/// Every group [`crate::ecdh`] offers.
pub const GROUPS: [GroupParams; 2] = [
    GroupParams {
        name: "ristretto255",
        standard: "RFC 9496 (over Curve25519, RFC 7748)",
        order_bits: 253,
        security_bits: 126,
        element_bytes: 32,
        hash_to_group: "one-way map of SHA-512(DST || id), RFC 9496 §4.3.4",
    },
    GroupParams {
        name: "sm2",
        standard: "GB/T 32918.5-2017 (SM2 recommended curve sm2p256v1)",
        order_bits: 256,
        security_bits: 128,
        element_bytes: 33,
        hash_to_group: "RFC 9380 hash_to_curve, suite SM2_XMD:SM3_SSWU_RO_ (SM3 of GB/T 32905, Z = -9)",
    },
];

/// The parameters of the group named `name`, if [`crate::ecdh`] offers it.
pub fn group(name: &str) -> Option<&'static GroupParams> {
    GROUPS.iter().find(|g| g.name == name)
}

/// The cryptographic suite of a node or a job: which standards its primitives come from.
///
/// * `default`: Ristretto255 with SHA-512 for ECDH-PSI, ECDSA P-256 with SHA-256 for
///   signatures.
/// * `gm`: the Chinese national suite (国密, [`crate::gm`]): SM2 with SM3 for ECDH-PSI
///   ([`crate::ecdh::Sm2Sm3`]), SM2 signatures with SM3.
///
/// Transport between nodes is TLS 1.3 under either suite (rustls implements no TLCP).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Suite {
    #[default]
    Default,
    Gm,
}

impl Suite {
    pub const ALL: [Suite; 2] = [Suite::Default, Suite::Gm];

    pub fn as_str(self) -> &'static str {
        match self {
            Suite::Default => "default",
            Suite::Gm => "gm",
        }
    }

    /// The ECDH-PSI group of the suite ([`GroupParams::name`]).
    pub fn psi_group(self) -> &'static GroupParams {
        match self {
            Suite::Default => &GROUPS[0],
            Suite::Gm => &GROUPS[1],
        }
    }

    /// The suite whose PSI group is `group`, if any.
    pub fn of_psi_group(group: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.psi_group().name == group)
    }
}

impl std::fmt::Display for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Suite {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "default" => Ok(Suite::Default),
            "gm" => Ok(Suite::Gm),
            other => Err(format!(
                "unknown crypto suite '{other}': use 'default' (Ristretto255, ECDSA P-256) or 'gm' (SM2, SM3, SM4)"
            )),
        }
    }
}

/// Default key size for both schemes.
pub const DEFAULT_KEY_BITS: u32 = 2048;

/// Smallest key the library accepts. Keys below 2048 bits are for tests and experiments only;
/// job configuration refuses them unless explicitly allowed.
pub const MIN_KEY_BITS: u32 = 256;

/// Largest key the library accepts (keeps parsing of peer-supplied keys bounded).
pub const MAX_KEY_BITS: u32 = 8192;

/// Key sizes offered to users.
pub const SUPPORTED_KEY_BITS: [u32; 2] = [2048, 3072];

/// Security level κ in bits of an integer-factorisation modulus of `modulus_bits` bits.
pub fn security_bits(modulus_bits: u32) -> u32 {
    match modulus_bits {
        0..=1023 => 64,
        1024..=2047 => 80,
        2048..=3071 => 112,
        3072..=4095 => 128,
        4096..=7679 => 152,
        7680..=15359 => 192,
        _ => 256,
    }
}

/// Bit length ℓ of the short randomizer exponent: `2κ` for a modulus of security level κ
/// ([`security_bits`]): 224 bits at 2048-bit keys, 256 at 3072, 304 at 4096.
///
/// Why `2κ` and not more: the best known ways to tell `h^r` for an ℓ-bit `r` from a random
/// element of `h`'s group are the generic square-root algorithms (Pollard's kangaroo, baby-step
/// giant-step), about `2^(ℓ/2)` steps, so `ℓ = 2κ` puts that attack at the modulus' own level
/// `2^κ`, where factoring `n` already sits; a longer `r` costs products without raising the
/// key's security. This is NIST SP 800-56B/57's rule for short exponents (`2κ`-bit private
/// exponents), the size SecretFlow's HEU uses for OU's subgroup order at 2048 bits (224), and
/// ≥ its OU randomizer (110 bits at 2048, which is below `2κ` and which Ferry does not follow).
/// Until December 2026 Ferry used `max(256, 2κ)`, i.e. 256 bits at 2048-bit keys; keys and
/// ciphertexts made with either size interoperate (the size is not part of any format).
pub fn randomizer_exponent_bits(modulus_bits: u32) -> u32 {
    2 * security_bits(modulus_bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_nist_levels() {
        assert_eq!(security_bits(2048), 112);
        assert_eq!(security_bits(3072), 128);
        assert_eq!(randomizer_exponent_bits(2048), 224);
        assert_eq!(randomizer_exponent_bits(3072), 256);
        assert_eq!(randomizer_exponent_bits(4096), 304);
    }

    #[test]
    fn group_table_matches_the_groups() {
        use crate::ecdh::{EcdhGroup, Ristretto255, Sm2Sm3};
        for (name, bytes) in [
            (Ristretto255::NAME, Ristretto255::ELEMENT_BYTES),
            (Sm2Sm3::NAME, Sm2Sm3::ELEMENT_BYTES),
        ] {
            let g = group(name).unwrap_or_else(|| panic!("{name} is missing from GROUPS"));
            assert_eq!(g.element_bytes, bytes, "{name}");
            assert!(g.security_bits >= 126, "{name}: at least the 128-bit class");
            assert!(g.security_bits <= g.order_bits / 2 + 1, "{name}: rho bound");
        }
        assert!(group("p-256").is_none());
    }

    #[test]
    fn suites_parse_and_name_their_groups() {
        for suite in Suite::ALL {
            assert_eq!(suite.as_str().parse::<Suite>(), Ok(suite));
            assert_eq!(Suite::of_psi_group(suite.psi_group().name), Some(suite));
        }
        assert_eq!(Suite::Gm.psi_group().name, "sm2");
        assert_eq!(Suite::Default.psi_group().name, "ristretto255");
        let e = "sm".parse::<Suite>().unwrap_err();
        assert!(e.contains("'sm'") && e.contains("'gm'"), "{e}");
        assert_eq!(serde_json::to_string(&Suite::Gm).unwrap(), "\"gm\"");
    }
}

/// The homomorphic-encryption settings of a job: one struct for every algorithm that
/// encrypts (SecureBoost, hetero LR, WOE binning), with one validation.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HeSettings {
    /// `paillier` or `ou` (Okamoto–Uchiyama).
    pub scheme: crate::SchemeKind,
    /// Modulus size of every key in the job: 2048 (112-bit security) or more.
    #[schemars(range(min = 2048, max = 8192))]
    pub key_bits: u32,
    /// Accept keys below [`DEFAULT_KEY_BITS`] (tests, benchmarks, and a node whose own
    /// `[policy]` allows them). Never read from or written to JSON (`serde(skip)`): a proposer
    /// could otherwise have every party run on keys anyone can factor.
    #[serde(skip)]
    #[schemars(skip)]
    pub allow_insecure_key_bits: bool,
}

impl Default for HeSettings {
    fn default() -> Self {
        HeSettings {
            scheme: crate::SchemeKind::Paillier,
            key_bits: DEFAULT_KEY_BITS,
            allow_insecure_key_bits: false,
        }
    }
}

impl HeSettings {
    /// The same settings with `key_bits` keys, accepted even below 2048 bits: for tests and
    /// benchmarks only.
    pub fn insecure_for_tests(scheme: crate::SchemeKind, key_bits: u32) -> Self {
        HeSettings {
            scheme,
            key_bits,
            allow_insecure_key_bits: true,
        }
    }

    /// Checks the key size: even, at most [`MAX_KEY_BITS`], and at least
    /// [`DEFAULT_KEY_BITS`] unless `allow_insecure_key_bits` (then at least [`MIN_KEY_BITS`]).
    /// The message names the field as `key_bits`; callers prefix their path.
    pub fn validate(&self) -> Result<(), String> {
        let min = if self.allow_insecure_key_bits {
            MIN_KEY_BITS
        } else {
            DEFAULT_KEY_BITS
        };
        if self.key_bits < min || self.key_bits > MAX_KEY_BITS {
            return Err(format!(
                "key_bits must be between {min} and {MAX_KEY_BITS}, got {} (smaller keys are \
                 for tests only and cannot be asked for in parameters)",
                self.key_bits
            ));
        }
        if !self.key_bits.is_multiple_of(2) {
            return Err(format!("key_bits must be even, got {}", self.key_bits));
        }
        Ok(())
    }
}
