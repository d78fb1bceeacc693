//! Okamoto–Uchiyama encryption ("A New Public-Key Cryptosystem as Secure as Factoring",
//! EUROCRYPT 1998), behind the same [`HePublicKey`] / [`HeSecretKey`] traits as Paillier.
//!
//! # Parameters
//! * `n = p²·q` of `bits` bits: `p` has `bits/3` bits and `q` the rest, both with their top two
//!   bits set; `n` is regenerated until it has exactly `bits` bits.
//! * `p - 1 = t·u` with `t` a prime of `ℓ_t` bits ([`subgroup_bits`]: `2κ`, 224 bits at 2048-bit keys, as the
//!   short randomizer exponent; smaller only for test-sized keys). With a random unit `g₀`
//!   whose `g₀^(p-1) mod p²` has order `p` (checked) and an independent random unit `g₁`,
//!   the public generators are `g = g₀^u mod n` and `h = g₁^(n·u) mod n`: the
//!   "accelerated" variant of Coron, Naccache and Paillier ("Accelerating Okamoto–Uchiyama's
//!   public-key cryptosystem", Electronics Letters 35(4), 1999), which SecretFlow's HEU uses
//!   as well. The public key is `(n, g, h)` and the public size of `p`; its form is the one
//!   of the original scheme, only the secret key knows `t`.
//! * Plaintext space `Z_p`. `p` is secret, so the usable signed range is published through its
//!   size only: `|m| < 2^(|p|-2)`, i.e. 680 bits for a 2048-bit key (Paillier: 2046 bits).
//!   Negative values are encrypted as `g^-|m|` and decrypt to the centred residue modulo `p`.
//! * Ciphertexts are residues modulo `n` (same size as the key: half of Paillier's), which is
//!   why additions are about four times cheaper than Paillier's at the same key size.
//!
//! # Encryption
//! `E(m) = g^m · h^r mod n` with `r` of `ℓ = 2κ` bits (the original scheme draws `r`
//! from `Z_n`; the short exponent rests on the same argument as for Paillier, see
//! [`crate::paillier`] and [`crate::params`]). `g^m`, `g^-m` and `h^r` all come from
//! fixed-base tables, so an encryption costs one multiplication modulo `n` per row of `h`'s
//! table and per non-zero window of `m` ([`FixedBaseTable::widths_for`]). Without IFMA at
//! 2048 bits `h`'s table has 16 rows of 14 bits ([`PUBLIC_RANDOMIZER_TABLE_BUDGET_BYTES`])
//! and a fixed-point plaintext takes up to 3 more ([`SHORT_PLAINTEXT_BITS`]): about 18
//! products, where whole 11-bit windows took 25.
//!
//! Key generation draws `q` so that `n`'s low 640 bits (at 2048 bits) are all ones, which
//! shortens every Montgomery reduction modulo `n` by as many words ([`low_ones_words`]).
//!
//! The key owner (the label holder encrypting its gradients) computes the same `g^m · h^r`
//! modulo `p²` and `q` and recombines it with the CRT: the ciphertext is exactly the public
//! key's for the same draw of `r`, at the cost of products modulo numbers of two thirds and one
//! third of `n`'s size (`HeSecretKey::encrypt`). Modulo `p²` both generators are powers of one
//! element `ω` of order `t` (times a known factor of order `p`), so that half is a single
//! exponentiation of `|t|` bits whatever `m` ([`OwnerP2`]); key generation draws `h`'s part
//! modulo `p²` as `ω^k`, from the same distribution as the scheme's `g₁^(n·u)`.
//!
//! # Decryption
//! `m = L(c^t mod p²) · L(g^t mod p²)^-1 mod p` with `L(x) = (x-1)/p`: `h^t ≡ 1 (mod p²)`
//! because `n·u·t = n·(p-1)` is a multiple of `p(p-1)`, the order of `(Z/p²)*`, and
//! `g^t = g₀^(p-1)` has order `p`. One exponentiation modulo `p²` with an `ℓ_t`-bit exponent
//! (224 bits at 2048-bit keys) instead of the original `c^(p-1)` with a `|p|`-bit one (682
//! bits): about 3 times fewer squarings, the whole cost of decryption.
//!
//! # Threat model
//! Semi-honest, IND-CPA under the p-subgroup assumption restricted to the subgroup of order
//! `t` (Coron–Naccache–Paillier); recovering `t` from `g` or `h` means solving a discrete
//! logarithm-type problem in a group of order at least `2^ℓ_t`, which the generic algorithms
//! do in about `2^(ℓ_t/2) ≥ 2^κ` steps, the security level of the modulus. A chosen-ciphertext attacker who can
//! get arbitrary ciphertexts decrypted can factor `n`: key owners never return raw decryptions
//! of peer-chosen ciphertexts (protocols mask first).

use crate::arith::{Backend, FixedBaseTable, MontModulus, Residue};
use crate::he::{HeError, HePublicKey, HeSecretKey, KeyGenError, SchemeKind, check_plaintext};
use crate::params::{MAX_KEY_BITS, MIN_KEY_BITS, randomizer_exponent_bits};
use crate::random::{random_below, random_bits, random_prime, random_prime_in_class, random_unit};
use crate::wire::{self, CiphertextBatch, KeyReader, KeyWriter, WireError};
use rand::CryptoRng;
use rug::Integer;
use std::sync::{Arc, OnceLock};

/// An Okamoto–Uchiyama public key. Cloning is cheap (shared).
#[derive(Clone)]
pub struct OuPublicKey {
    inner: Arc<PublicInner>,
}

struct PublicInner {
    key_bits: u32,
    p_bits: u32,
    n: Integer,
    g: Integer,
    h: Integer,
    ring: MontModulus,
    g_residue: Residue,
    g_inv_residue: Residue,
    h_residue: Residue,
    g_table: OnceLock<FixedBaseTable>,
    g_inv_table: OnceLock<FixedBaseTable>,
    h_table: OnceLock<FixedBaseTable>,
    fingerprint: [u8; 8],
}

/// A ciphertext: a residue modulo n.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OuCiphertext(Residue);

impl std::fmt::Debug for OuPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OuPublicKey")
            .field("bits", &self.inner.key_bits)
            .field("fingerprint", &wire::hex(&self.inner.fingerprint))
            .finish()
    }
}

impl PartialEq for OuPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.inner.n == other.inner.n
            && self.inner.g == other.inner.g
            && self.inner.h == other.inner.h
    }
}

/// Size of `p` for a key of `bits` bits.
fn p_bits_for(bits: u32) -> u32 {
    bits / 3
}

/// Size of `t`, the prime factor of `p - 1` whose subgroup carries `g^t`'s complement and the
/// randomizer: `2κ` bits ([`randomizer_exponent_bits`]), so that the generic
/// attacks on the subgroup cost `2^κ`. Test-sized keys (whose `p` is below 512 bits) take half
/// of `p` instead, which keeps the same structure at sizes the library only accepts for tests.
pub fn subgroup_bits(key_bits: u32) -> u32 {
    randomizer_exponent_bits(key_bits).min(p_bits_for(key_bits) / 2)
}

/// Bits of `q` drawn at random above the class that [`low_ones_words`] fixes: at least 40
/// below its top two (42 at 2048-bit keys), so that the primality search has some `2^40`
/// candidates (it needs a few hundred). Given `p`, `q` is then fixed but for these bits, as
/// the second factor is in Lenstra's construction of RSA moduli with a predetermined portion;
/// `p` itself, which an attacker does not know, keeps all of its randomness.
const Q_RANDOM_BITS: u32 = 40;

/// How many low 64-bit words of a key's `n` are all ones (`n ≡ -1 mod 2^(64·w)`), for a `q`
/// of `q_bits` bits: as many whole words as `q` can fix below [`Q_RANDOM_BITS`] random ones and
/// its top two (10 at 2048 bits: 640 of 2048 bits; 4 at 1024).
///
/// Why: where `n`'s low words are all ones, every Montgomery reduction row modulo `n` is that
/// many words shorter ([`crate::arith`]'s `mpn` backend), which made public-key encryption,
/// addition and scalar multiplication about 11 % faster without IFMA at 2048 bits. The factor
/// `q` is drawn in the residue class that gives `n` this form (`q ≡ -p⁻² mod 2^(64·w)`), the
/// trailing-digit form of Lenstra's RSA moduli with a predetermined portion (Asiacrypt '98):
/// fixing up to half of a modulus's bits this way is not known to make it easier to factor,
/// and this fixes under a third; `p`, `t` and everything secret are drawn as before.
fn low_ones_words(q_bits: u32) -> u32 {
    q_bits.saturating_sub(2 + Q_RANDOM_BITS) / 64
}

/// A prime `p` of exactly `p_bits` bits with its top two bits set and `p - 1 = t·u`.
fn prime_with_factor<R: CryptoRng + ?Sized>(rng: &mut R, p_bits: u32, t: &Integer) -> Integer {
    loop {
        // Aim at a random target of the right shape and take the nearest `t·u + 1` below it
        // with `u` even (so that p is odd); retry when rounding left the shape.
        let mut target = random_bits(rng, p_bits);
        target.set_bit(p_bits - 1, true);
        target.set_bit(p_bits - 2, true);
        let mut u = Integer::from(&target / t);
        u.set_bit(0, false);
        let p = Integer::from(t * &u) + 1u32;
        if p.significant_bits() != p_bits || !p.get_bit(p_bits - 2) {
            continue;
        }
        if p.is_probably_prime(crate::random::PRIMALITY_REPS) != rug::integer::IsPrime::No {
            return p;
        }
    }
}
impl OuPublicKey {
    fn from_parts(
        key_bits: u32,
        p_bits: u32,
        n: Integer,
        g: Integer,
        h: Integer,
    ) -> Result<Self, WireError> {
        if !(MIN_KEY_BITS..=MAX_KEY_BITS).contains(&key_bits) {
            return Err(WireError::InvalidKey(
                "key size outside the supported range",
            ));
        }
        if n.significant_bits() != key_bits || n.is_even() {
            return Err(WireError::InvalidKey(
                "modulus does not match the declared size or is even",
            ));
        }
        if p_bits != p_bits_for(key_bits) {
            return Err(WireError::InvalidKey(
                "size of p does not match the key size",
            ));
        }
        for (v, what) in [
            (&g, "generator g is not a unit modulo n"),
            (&h, "generator h is not a unit modulo n"),
        ] {
            if *v <= 1 || *v >= n || Integer::from(v.gcd_ref(&n)) != 1 {
                return Err(WireError::InvalidKey(what));
            }
        }
        let ring = MontModulus::new(&n).map_err(|_| WireError::InvalidKey("bad modulus"))?;
        let g_inv = Integer::from(g.invert_ref(&n).expect("unit has an inverse"));
        let bytes = Self::encode(key_bits, p_bits, &n, &g, &h);
        Ok(OuPublicKey {
            inner: Arc::new(PublicInner {
                key_bits,
                p_bits,
                g_residue: ring.to_residue(&g),
                g_inv_residue: ring.to_residue(&g_inv),
                h_residue: ring.to_residue(&h),
                n,
                g,
                h,
                ring,
                g_table: OnceLock::new(),
                g_inv_table: OnceLock::new(),
                h_table: OnceLock::new(),
                fingerprint: wire::fingerprint(&bytes),
            }),
        })
    }

    fn encode(key_bits: u32, p_bits: u32, n: &Integer, g: &Integer, h: &Integer) -> Vec<u8> {
        KeyWriter::new(SchemeKind::OkamotoUchiyama, key_bits)
            .u32(p_bits)
            .integer(n)
            .integer(g)
            .integer(h)
            .finish()
    }

    /// Versioned wire form: `|p|`, `n`, `g`, `h`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let i = &self.inner;
        Self::encode(i.key_bits, i.p_bits, &i.n, &i.g, &i.h)
    }

    /// Parses and validates a public key received from a peer.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = KeyReader::new(bytes, SchemeKind::OkamotoUchiyama)?;
        let p_bits = r.u32()?;
        let n = r.integer("modulus")?;
        let g = r.integer("generator g")?;
        let h = r.integer("generator h")?;
        let key_bits = r.key_bits;
        r.finish()?;
        Self::from_parts(key_bits, p_bits, n, g, h)
    }

    pub fn n(&self) -> &Integer {
        &self.inner.n
    }

    /// Builds all fixed-base tables now rather than on first use.
    pub fn precompute(&self) {
        self.g_table();
        self.g_inv_table();
        self.h_table();
    }

    fn g_table(&self) -> &FixedBaseTable {
        let i = &self.inner;
        plaintext_table(&i.g_table, &i.ring, &i.g_residue, i.p_bits)
    }

    fn g_inv_table(&self) -> &FixedBaseTable {
        let i = &self.inner;
        plaintext_table(&i.g_inv_table, &i.ring, &i.g_inv_residue, i.p_bits)
    }

    fn h_table(&self) -> &FixedBaseTable {
        let i = &self.inner;
        let bits = randomizer_exponent_bits(i.key_bits);
        i.h_table.get_or_init(|| {
            i.ring
                .fixed_base_table_within(&i.h_residue, bits, PUBLIC_RANDOMIZER_TABLE_BUDGET_BYTES)
        })
    }

    /// `g^m` for a signed `m` inside the plaintext range.
    fn g_pow(&self, m: &Integer) -> Residue {
        self.g_table()
            .pow_signed(self.g_inv_table(), &self.inner.ring, m)
    }

    fn random_h_pow<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> Residue {
        let r = random_bits(rng, randomizer_exponent_bits(self.inner.key_bits));
        self.h_table().pow(&self.inner.ring, &r)
    }

    /// The canonical integer of a ciphertext (tests).
    pub fn ciphertext_value(&self, c: &OuCiphertext) -> Integer {
        self.inner.ring.to_integer(&c.0)
    }
}

wire::serde_via_bytes!(OuPublicKey);

impl HePublicKey for OuPublicKey {
    type Ciphertext = OuCiphertext;

    fn scheme(&self) -> SchemeKind {
        SchemeKind::OkamotoUchiyama
    }

    fn key_bits(&self) -> u32 {
        self.inner.key_bits
    }

    fn plaintext_bits(&self) -> u32 {
        self.inner.p_bits - 2
    }

    fn ciphertext_bytes(&self) -> usize {
        self.inner.key_bits.div_ceil(8) as usize
    }

    fn fingerprint(&self) -> [u8; 8] {
        self.inner.fingerprint
    }

    fn encrypt<R: CryptoRng + ?Sized>(
        &self,
        m: &Integer,
        rng: &mut R,
    ) -> Result<OuCiphertext, HeError> {
        check_plaintext(m, self.plaintext_bits())?;
        let mut c = self.random_h_pow(rng);
        self.inner.ring.mul_assign(&mut c, &self.g_pow(m));
        Ok(OuCiphertext(c))
    }

    fn zero(&self) -> OuCiphertext {
        OuCiphertext(self.inner.ring.one())
    }

    fn add(&self, a: &OuCiphertext, b: &OuCiphertext) -> OuCiphertext {
        OuCiphertext(self.inner.ring.mul(&a.0, &b.0))
    }

    fn add_assign(&self, a: &mut OuCiphertext, b: &OuCiphertext) {
        self.inner.ring.mul_assign(&mut a.0, &b.0);
    }

    fn sub(&self, a: &OuCiphertext, b: &OuCiphertext) -> OuCiphertext {
        self.add(a, &self.neg(b))
    }

    fn add_plain(&self, a: &OuCiphertext, m: &Integer) -> Result<OuCiphertext, HeError> {
        check_plaintext(m, self.plaintext_bits())?;
        Ok(OuCiphertext(self.inner.ring.mul(&a.0, &self.g_pow(m))))
    }

    fn mul_plain(&self, a: &OuCiphertext, k: &Integer) -> OuCiphertext {
        OuCiphertext(self.inner.ring.pow_signed(&a.0, k))
    }

    fn neg(&self, a: &OuCiphertext) -> OuCiphertext {
        OuCiphertext(self.inner.ring.unit_inverse(&a.0))
    }

    fn shift_left(&self, a: &OuCiphertext, shift: u32) -> OuCiphertext {
        OuCiphertext(self.inner.ring.square_times(&a.0, shift))
    }

    fn rerandomize<R: CryptoRng + ?Sized>(&self, a: &OuCiphertext, rng: &mut R) -> OuCiphertext {
        let mut c = self.random_h_pow(rng);
        self.inner.ring.mul_assign(&mut c, &a.0);
        OuCiphertext(c)
    }

    fn encode_batch(&self, cts: &[OuCiphertext]) -> CiphertextBatch {
        let ring = &self.inner.ring;
        CiphertextBatch::from_integers(
            SchemeKind::OkamotoUchiyama,
            self.inner.fingerprint,
            self.ciphertext_bytes(),
            cts.iter().map(|c| ring.to_integer(&c.0)),
        )
    }

    fn decode_batch(&self, batch: &CiphertextBatch) -> Result<Vec<OuCiphertext>, WireError> {
        batch.check_shape(
            SchemeKind::OkamotoUchiyama,
            self.inner.fingerprint,
            self.ciphertext_bytes(),
        )?;
        Ok(
            crate::batch::decode_units(batch, &self.inner.ring, &self.inner.n)?
                .into_iter()
                .map(OuCiphertext)
                .collect(),
        )
    }
}

/// The fixed-base table in `cell` of `base` (`g` or `g⁻¹`) for plaintexts of up to `p_bits`
/// bits, built on first use with the rows [`plaintext_table_widths`] plans.
fn plaintext_table<'a>(
    cell: &'a OnceLock<FixedBaseTable>,
    ring: &MontModulus,
    base: &Residue,
    p_bits: u32,
) -> &'a FixedBaseTable {
    cell.get_or_init(|| {
        FixedBaseTable::with_widths(ring, base, &plaintext_table_widths(ring, p_bits))
    })
}

/// Memory the public key's `h^r` table may take (64 MiB, four times the common
/// [`FixedBaseTable::WIDE_TABLE_BUDGET_BYTES`]).
///
/// Why: `r` is uniform, so every public encryption pays one product for every row of this
/// table, where the plaintext tables cost a few rows for the usual short plaintexts. At
/// 2048-bit keys without IFMA that is 16 rows of 14 bits (67 MB, built in about 0.25 s on the
/// first public encryption) instead of 20 rows of 12 and 11 bits (12.6 MB) in the common
/// budget, or 17 rows (42 MB) in 48 MiB: one product in 17 fewer than the latter, measured
/// 60-61k against 58-59k public encryptions a second on the development machine (Zen 4
/// without IFMA, before the reduction was inlined; 66k now). With the plaintext tables a
/// public key without IFMA holds about 108 MB of tables at 2048 bits, built only if it
/// encrypts.
pub const PUBLIC_RANDOMIZER_TABLE_BUDGET_BYTES: u64 = 64 << 20;

/// The plaintext bits the `g` and `g⁻¹` tables give their widest rows: a fixed-point value of
/// magnitude below 4 at [`crate::encoding::FixedPoint`]'s default 40 fractional bits (a
/// gradient, a residual, a scaled feature), which then takes 3 rows of 14 bits.
pub const SHORT_PLAINTEXT_BITS: u32 = 42;

/// Row widths of a `g` or `g⁻¹` table modulo `ring` for plaintexts of up to `p_bits` bits.
///
/// Why not [`FixedBaseTable::widths_for`] over all `p_bits`: most plaintexts are short
/// fixed-point values, which only reach the low rows, and balanced rows over 682 bits would
/// be 10 bits wide there. So the low [`SHORT_PLAINTEXT_BITS`] get rows planned on their own
/// within the common budget (3 of 14 bits), and the rest (packed plaintexts reach them) rows
/// within half of it. With IFMA, uniform 8-bit rows as everywhere.
fn plaintext_table_widths(ring: &MontModulus, p_bits: u32) -> Vec<u32> {
    let (backend, bits) = (ring.backend(), ring.bits());
    if backend == Backend::Ifma || p_bits <= SHORT_PLAINTEXT_BITS {
        return FixedBaseTable::widths_for(backend, bits, p_bits);
    }
    let mut widths = FixedBaseTable::widths_for(backend, bits, SHORT_PLAINTEXT_BITS);
    widths.extend(FixedBaseTable::widths_within(
        backend,
        bits,
        p_bits - SHORT_PLAINTEXT_BITS,
        FixedBaseTable::WIDE_TABLE_BUDGET_BYTES / 2,
    ));
    widths
}

/// An Okamoto–Uchiyama secret key.
pub struct OuSecretKey {
    public: OuPublicKey,
    p: Integer,
    /// `t`, the prime factor of `p - 1` that `c^t` needs (see the module docs).
    t: Integer,
    half_p: Integer,
    /// `L(g^t mod p²)^-1 mod p`.
    g_l_inv: Integer,
    /// Owner encryption's halves modulo `p²` and `q` and `q^-1 mod p²` to recombine them.
    owner_p2: OwnerP2,
    owner_q: OwnerHalf,
    /// `q⁻¹ mod p²`, a residue of the owner's ring modulo `p²`.
    q_inv_p2: Residue,
}

/// `g`, `g^-1` and `h` modulo `q`, a CRT factor of `n`, and their fixed-base tables, built on
/// the key owner's first encryption ([`OwnerP2`] is the other factor).
///
/// Why: an owner encryption is the public one's `g^m · h^r` computed modulo `p²` (22 words at
/// 2048-bit keys) and `q` (11 words) and recombined, and products cost about the square of
/// the size, so the two halves together cost about 0.6 of one product modulo `n` (32 words).
/// The tables of both factors take some 68 MB at 2048 bits without IFMA, where windows are
/// widest (29 MB modulo `p²`, 39 MB modulo `q`), once per secret key, built on its first
/// owner encryption.
struct OwnerHalf {
    modulus: Integer,
    ring: MontModulus,
    g: Residue,
    g_inv: Residue,
    h: Residue,
    /// The public ring's Montgomery factor `R` reduced here, where it has one
    /// ([`MontModulus::montgomery_factor`]; see [`OuSecretKey::encrypt_by_crt`]).
    factor: Option<Integer>,
    g_table: OnceLock<FixedBaseTable>,
    g_inv_table: OnceLock<FixedBaseTable>,
    h_table: OnceLock<FixedBaseTable>,
}

impl OwnerHalf {
    fn new(modulus: Integer, public: &PublicInner) -> Option<Self> {
        let ring = MontModulus::new(&modulus).ok()?;
        let g_inv = Integer::from(public.g.invert_ref(&public.n)?);
        Some(OwnerHalf {
            g: ring.to_residue(&Integer::from(&public.g % &modulus)),
            g_inv: ring.to_residue(&(g_inv % &modulus)),
            h: ring.to_residue(&Integer::from(&public.h % &modulus)),
            factor: public.ring.montgomery_factor().map(|r| r % &modulus),
            ring,
            modulus,
            g_table: OnceLock::new(),
            g_inv_table: OnceLock::new(),
            h_table: OnceLock::new(),
        })
    }

    /// `g^m · h^r · R` modulo this factor (`R` = [`OwnerHalf::factor`], or 1 where the public
    /// ring has none), as an integer in `[0, modulus)`.
    fn encrypt(&self, public: &PublicInner, m: &Integer, r: &Integer) -> Integer {
        let ring = &self.ring;
        let r_bits = randomizer_exponent_bits(public.key_bits);
        let h_table = self
            .h_table
            .get_or_init(|| ring.fixed_base_table(&self.h, r_bits));
        let mut c = h_table.pow(ring, r);
        let g_table = plaintext_table(&self.g_table, ring, &self.g, public.p_bits);
        let g_inv_table = plaintext_table(&self.g_inv_table, ring, &self.g_inv, public.p_bits);
        let gm = g_table.pow_signed(g_inv_table, ring, m);
        self.ring.mul_assign(&mut c, &gm);
        match &self.factor {
            Some(f) => self.ring.mul_to_integer(&c, f),
            None => self.ring.to_integer(&c),
        }
    }
}

/// `g = ω · (1 + p·a) (mod p²)`: the split of `g` into `ω`, of order `t`, and `1 + p·a`, of
/// order `p`, computed once at key generation.
///
/// `(Z/p²)*` is the product of the subgroup of order `p` (the elements `1 + p·x`) and the one
/// of order `p - 1`, and `g^t = (1 + p·a)^t = 1 + p·a·t` because `ω^t = 1`, which gives
/// `a = L(g^t mod p²) · t⁻¹ mod p`.
struct GeneratorSplit {
    /// `L(g^t mod p²)`, which decryption inverts too.
    l_gt: Integer,
    a: Integer,
    omega: Integer,
}

fn split_generator(g: &Integer, p: &Integer, t: &Integer) -> Option<GeneratorSplit> {
    let p2 = Integer::from(p.square_ref());
    let gt = Integer::from(g.pow_mod_ref(t, &p2)?);
    let l_gt = (gt - 1u32) / p;
    let t_inv = Integer::from(t.invert_ref(p)?);
    let a = Integer::from(&l_gt * &t_inv) % p;
    // 1 - p·a mod p², the inverse of 1 + p·a.
    let unit_inv = (Integer::from(1) - Integer::from(p * &a)).modulo(&p2);
    let omega = (Integer::from(g % &p2) * unit_inv) % &p2;
    Some(GeneratorSplit { l_gt, a, omega })
}

/// Owner encryption modulo `p²`, where the owner knows the structure of both generators.
///
/// `g = ω · (1 + p·a)` ([`GeneratorSplit`]), and key generation made `h ≡ ω^k (mod p²)` for a
/// secret `k` drawn uniformly from `[1, t)` (see [`OuSecretKey::generate`]: the same
/// distribution of `h` as `g₁^(n·u)`). So `g^m · h^r = ω^((m + k·r) mod t) · (1 + p·(m·a mod
/// p))`: ONE fixed-base exponentiation with an exponent of `|t|` bits (224 at 2048-bit keys)
/// plus one product modulo `p`, where the two generators separately cost `h^r` (224 bits) and
/// `g^m` (up to 680 bits, or `ω^(m mod t)` with a second table). Why it matters: this half is
/// two thirds of an owner encryption's products. The result is the same number as the public
/// key's for the same draw of `r`, so owner and public ciphertexts stay equal (tested).
struct OwnerP2 {
    p: Integer,
    p2: Integer,
    t: Integer,
    ring: MontModulus,
    /// `a` of [`GeneratorSplit`].
    a: Integer,
    /// `k` with `h ≡ ω^k (mod p²)`.
    k: Integer,
    omega: Residue,
    /// The public ring's Montgomery factor `R` modulo `p²` (1 where it has none, see
    /// [`OwnerHalf::factor`]), and modulo `p`.
    factor: Integer,
    factor_mod_p: Integer,
    omega_table: OnceLock<FixedBaseTable>,
}

impl OwnerP2 {
    fn new(
        p: &Integer,
        t: &Integer,
        split: GeneratorSplit,
        k: Integer,
        public: &PublicInner,
    ) -> Option<Self> {
        let p2 = Integer::from(p.square_ref());
        let ring = MontModulus::new(&p2).ok()?;
        let factor = public
            .ring
            .montgomery_factor()
            .map_or_else(|| Integer::from(1), |r| r % &p2);
        Some(OwnerP2 {
            factor_mod_p: Integer::from(&factor % p),
            factor,
            omega: ring.to_residue(&split.omega),
            p: p.clone(),
            p2,
            t: t.clone(),
            ring,
            a: split.a,
            k,
            omega_table: OnceLock::new(),
        })
    }

    /// `g^m · h^r · R mod p²`, in `[0, p²)`, with `R` as in [`OwnerHalf::encrypt`].
    fn encrypt(&self, m: &Integer, r: &Integer) -> Integer {
        let ring = &self.ring;
        let mut e = Integer::from(&self.k * r);
        e += m;
        e.modulo_mut(&self.t);
        let bits = self.t.significant_bits();
        // This one table replaces the three the two generators needed (h, ω and ω⁻¹), so it
        // may take their memory: 17 rows of 14 and 13 bits at 2048-bit keys without IFMA
        // (29 MB) where the common budget allows 19 rows of 12 and 11 (12 MB).
        let omega_table = self.omega_table.get_or_init(|| {
            ring.fixed_base_table_within(
                &self.omega,
                bits,
                2 * FixedBaseTable::WIDE_TABLE_BUDGET_BYTES,
            )
        });
        let power = omega_table.pow(ring, &e);
        // y = z · (1 + p·x) · R with z = ω^e and x = m·a mod p, as one product of z's residue
        // by the plain factor K = R·(1 + p·x) = R + p·(R·x mod p)  (mod p²).
        let x = Integer::from(m * &self.a).modulo(&self.p);
        let mut k = x * &self.factor_mod_p;
        k.modulo_mut(&self.p);
        k *= &self.p;
        k += &self.factor;
        if k >= self.p2 {
            k -= &self.p2;
        }
        ring.mul_to_integer(&power, &k)
    }
}

impl std::fmt::Debug for OuSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OuSecretKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl OuSecretKey {
    /// Owner encryption through the CRT: the public key's `g^m · h^r` with the same `r`,
    /// computed modulo `p²` and `q` and recombined (Garner), so the ciphertext is the one the
    /// public key would produce from the same random draw.
    fn encrypt_by_crt<R: CryptoRng + ?Sized>(
        &self,
        m: &Integer,
        rng: &mut R,
    ) -> Result<OuCiphertext, HeError> {
        let public = &self.public.inner;
        check_plaintext(m, self.public.plaintext_bits())?;
        let r = random_bits(rng, randomizer_exponent_bits(public.key_bits));
        // Where the public ring stores residues as c·R mod n, both halves come out multiplied
        // by R (one product each instead of their conversion), and so does the recombined c:
        // it is the stored form itself, and the conversion into n's ring, a product modulo n
        // twice the size of the halves', is skipped.
        let cp = self.owner_p2.encrypt(m, &r);
        let cq = self.owner_q.encrypt(public, m, &r);
        // c = cq + q·((cp - cq)·q⁻¹ mod p²), the product by q⁻¹ as one Montgomery product.
        let mut d = cp - &cq;
        if d < 0 {
            d += &self.owner_p2.p2;
        }
        let mut c = self.owner_p2.ring.mul_to_integer(&self.q_inv_p2, &d);
        c *= &self.owner_q.modulus;
        c += cq;
        // Both halves carry the factor exactly when the public ring has one.
        let residue = if self.owner_q.factor.is_some() {
            public.ring.residue_from_montgomery(&c)
        } else {
            None
        };
        Ok(OuCiphertext(
            residue.unwrap_or_else(|| public.ring.to_residue(&c)),
        ))
    }

    /// `L(x) = (x - 1) / p` for `x ≡ 1 (mod p)`.
    fn l(&self, x: Integer) -> Integer {
        (x - 1u32) / &self.p
    }

    /// `split` is `g`'s ([`split_generator`]) and `k` the exponent with `h ≡ ω^k (mod p²)`
    /// ([`OwnerP2`]); `None` when the parts do not fit together (a degenerate draw, redrawn by
    /// the caller).
    fn from_parts(
        public: OuPublicKey,
        p: Integer,
        t: Integer,
        split: GeneratorSplit,
        k: Integer,
    ) -> Option<Self> {
        let p2 = Integer::from(p.square_ref());
        let half_p = Integer::from(&p >> 1);
        let q = Integer::from(&public.inner.n / &p2);
        let q_inv_p2 = Integer::from(q.invert_ref(&p2)?);
        let g_l_inv = split.l_gt.invert_ref(&p).map(Integer::from)?;
        let owner_p2 = OwnerP2::new(&p, &t, split, k, &public.inner)?;
        let q_inv_p2 = owner_p2.ring.to_residue(&q_inv_p2);
        let owner_q = OwnerHalf::new(q, &public.inner)?;
        Some(OuSecretKey {
            public,
            p,
            t,
            half_p,
            g_l_inv,
            owner_p2,
            owner_q,
            q_inv_p2,
        })
    }
}

impl HeSecretKey for OuSecretKey {
    type Public = OuPublicKey;

    fn generate<R: CryptoRng + ?Sized>(bits: u32, rng: &mut R) -> Result<Self, KeyGenError> {
        if !(MIN_KEY_BITS..=MAX_KEY_BITS).contains(&bits) {
            return Err(KeyGenError::UnsupportedSize {
                bits,
                reason: "need a size in 256..=8192",
            });
        }
        let p_bits = p_bits_for(bits);
        let q_bits = bits - 2 * p_bits;
        loop {
            let t = random_prime(rng, subgroup_bits(bits), None);
            let p = prime_with_factor(rng, p_bits, &t);
            let p2 = Integer::from(p.square_ref());
            let q = match low_ones_words(q_bits) {
                0 => random_prime(rng, q_bits, None),
                words => {
                    // n = p²·q ≡ -1 (mod 2^(64·words)): q ≡ -p⁻² in that class.
                    let class_bits = 64 * words;
                    let modulus = Integer::from(Integer::u_pow_u(2, class_bits));
                    let Some(p2_inv) = p2.invert_ref(&modulus).map(Integer::from) else {
                        continue;
                    };
                    let class = modulus - p2_inv;
                    random_prime_in_class(rng, q_bits, &class, class_bits)
                }
            };
            if p == q {
                continue;
            }
            let n = Integer::from(&p2 * &q);
            if n.significant_bits() != bits {
                continue;
            }
            let u = Integer::from(&p - 1u32) / &t;
            // g₀ must have order divisible by p modulo p²: L(g₀^(p-1) mod p²) ≠ 0 (mod p).
            let g0 = loop {
                let g0 = random_unit(rng, &n);
                let gp = Integer::from(
                    g0.pow_mod_ref(&Integer::from(&p - 1u32), &p2)
                        .expect("positive exponent"),
                );
                let l = (gp - 1u32) / &p;
                if Integer::from(&l % &p) != 0 {
                    break g0;
                }
            };
            let g = Integer::from(g0.pow_mod_ref(&u, &n).expect("positive exponent"));
            // h = g₁^(n·u) as in Coron–Naccache–Paillier, except that its part modulo p² is
            // drawn as ω^k with k uniform in [1, t) (ω of order t from g): g₁^(n·u) mod p² is
            // uniform in the same subgroup of order t, and the part modulo q is g₁^(n·u)
            // itself, so h has the same distribution as before while the owner knows k
            // (OwnerP2: one exponentiation instead of two modulo p²).
            let q_gen = random_unit(rng, &q);
            let nu = Integer::from(&n * &u);
            let h_q = Integer::from(q_gen.pow_mod_ref(&nu, &q).expect("positive exponent"));
            let Some(split) = split_generator(&g, &p, &t) else {
                continue;
            };
            let k = random_below(rng, &Integer::from(&t - 1u32)) + 1u32;
            let h_p2 = Integer::from(split.omega.pow_mod_ref(&k, &p2).expect("positive exponent"));
            // h ≡ h_p2 (mod p²), h ≡ h_q (mod q).
            let Some(q_inv_p2) = q.invert_ref(&p2).map(Integer::from) else {
                continue;
            };
            let mut h = Integer::from(&h_p2 - &h_q) * q_inv_p2;
            h.modulo_mut(&p2);
            h *= &q;
            h += h_q;
            // A degenerate draw (h = 1, or g or h not accepted as a unit > 1) is redrawn.
            let Ok(public) = OuPublicKey::from_parts(bits, p_bits, n, g, h) else {
                continue;
            };
            if let Some(sk) = OuSecretKey::from_parts(public, p, t, split, k) {
                return Ok(sk);
            }
        }
    }

    fn public(&self) -> &OuPublicKey {
        &self.public
    }

    /// Owner encryption: through the CRT ([`OuSecretKey::encrypt_by_crt`]) where that is
    /// faster, the public path otherwise; the same ciphertext either way.
    fn encrypt<R: CryptoRng + ?Sized>(
        &self,
        m: &Integer,
        rng: &mut R,
    ) -> Result<OuCiphertext, HeError> {
        if self.public.inner.ring.backend() == Backend::Ifma {
            // With IFMA a product modulo the 2048-bit n is so cheap that the two halves and
            // the recombination cost more than the public path (measured 75k against 96k
            // encryptions/s on one core at 2048 bits).
            return self.public.encrypt(m, rng);
        }
        self.encrypt_by_crt(m, rng)
    }

    fn decrypt(&self, c: &OuCiphertext) -> Integer {
        let c = self.public.inner.ring.to_integer(&c.0);
        // One ring modulo p², the owner encryption's, serves decryption too.
        let ring_p2 = &self.owner_p2.ring;
        let cp = ring_p2.to_residue(&c);
        let x = ring_p2.to_integer(&ring_p2.pow(&cp, &self.t));
        let mut m = self.l(x);
        m *= &self.g_l_inv;
        m.modulo_mut(&self.p);
        if m > self.half_p {
            m -= &self.p;
        }
        m
    }
}

/// Generates a key pair with the operating system's generator.
pub fn generate(bits: u32) -> Result<OuSecretKey, KeyGenError> {
    OuSecretKey::generate(bits, &mut rand::rng())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    /// Without IFMA, the public key's tables at 2048 bits: `h`'s 224-bit randomizer in 16
    /// rows of 14 bits (its own budget), `g`'s plaintexts with three 14-bit rows for the
    /// usual fixed-point values below them, then narrower rows up to `p`'s size within half
    /// the common budget; with IFMA, 8-bit rows throughout.
    #[test]
    fn public_table_rows_without_ifma() {
        let n = (Integer::from(1) << 2048u32) - 1u32 - (Integer::from(1) << 1000u32);
        let ring = MontModulus::with_backend(&n, Backend::Mpn).unwrap();
        let widths = plaintext_table_widths(&ring, 682);
        assert_eq!(widths[..3], [14, 14, 14]);
        assert!(widths[3] <= 9);
        assert_eq!(widths.iter().sum::<u32>(), 682);
        assert!(
            FixedBaseTable::table_bytes(2048, &widths[3..])
                <= FixedBaseTable::WIDE_TABLE_BUDGET_BYTES / 2
        );
        assert_eq!(
            FixedBaseTable::widths_within(
                Backend::Mpn,
                2048,
                randomizer_exponent_bits(2048),
                PUBLIC_RANDOMIZER_TABLE_BUDGET_BYTES
            ),
            vec![14; 16]
        );
        assert_eq!(
            FixedBaseTable::widths_for(Backend::Ifma, 2048, 682),
            vec![8; 86]
        );
        // Short key sizes' plaintexts fit the short rows alone.
        let small = MontModulus::with_backend(&Integer::from(1_000_003), Backend::Mpn).unwrap();
        assert_eq!(plaintext_table_widths(&small, 30).iter().sum::<u32>(), 30);
    }

    /// The accelerated key's structure: `t` is a prime of `subgroup_bits` bits dividing
    /// `p - 1`, `h` dies under `t` modulo `p²`, `g^t` has order `p`, and decryption with the
    /// short exponent returns what was encrypted, at a test size and at 2048 bits.
    #[test]
    fn accelerated_key_structure_and_round_trip() {
        let mut rng = ChaCha20Rng::seed_from_u64(19);
        for bits in [768u32, 2048] {
            let sk = OuSecretKey::generate(bits, &mut rng).unwrap();
            let pk = sk.public();
            assert_eq!(sk.t.significant_bits(), subgroup_bits(bits));
            assert_ne!(
                sk.t.is_probably_prime(crate::random::PRIMALITY_REPS),
                rug::integer::IsPrime::No
            );
            assert!(Integer::from(&sk.p - 1u32).is_divisible(&sk.t));
            assert_eq!(sk.p.significant_bits(), p_bits_for(bits));
            let p2 = Integer::from(sk.p.square_ref());
            let ht = pk.inner.h.clone().pow_mod(&sk.t, &p2).unwrap();
            assert_eq!(ht, 1, "h^t must be 1 modulo p²");
            let gt = pk.inner.g.clone().pow_mod(&sk.t, &p2).unwrap();
            assert_ne!(gt, 1);
            assert_eq!(gt.pow_mod(&sk.p, &p2).unwrap(), 1, "g^t must have order p");
            // The owner's split: ω of order t, g = ω·(1 + p·a), h ≡ ω^k (mod p²).
            let o = &sk.owner_p2;
            let omega = o.ring.to_integer(&o.omega);
            assert_ne!(omega, 1);
            assert_eq!(Integer::from(omega.pow_mod_ref(&sk.t, &p2).unwrap()), 1);
            let unit = Integer::from(&sk.p * &o.a) + 1u32;
            assert_eq!(
                Integer::from(&omega * &unit) % &p2,
                Integer::from(&pk.inner.g % &p2)
            );
            assert!(o.k > 0 && o.k < sk.t);
            assert_eq!(
                Integer::from(omega.pow_mod_ref(&o.k, &p2).unwrap()),
                Integer::from(&pk.inner.h % &p2)
            );
            // n's low words are all ones (10 of them at 2048 bits, 3 at 768), so reductions
            // modulo n take the shorter rows; n is still p²·q with q prime of its size.
            let q = Integer::from(&pk.inner.n / &p2);
            assert_eq!(Integer::from(&q * &p2), pk.inner.n);
            let words = low_ones_words(q.significant_bits());
            assert_eq!(words, if bits == 2048 { 10 } else { 3 });
            let ones = Integer::from(&pk.inner.n + 1u32);
            assert!(
                ones.is_divisible_2pow(64 * words),
                "n ≡ -1 mod 2^(64·{words})"
            );
            assert!(!ones.is_divisible_2pow(64 * words + 64));
            assert_ne!(
                q.is_probably_prime(crate::random::PRIMALITY_REPS),
                rug::integer::IsPrime::No
            );
            let bound = Integer::from(Integer::u_pow_u(2, pk.plaintext_bits())) - 1u32;
            for m in [
                Integer::new(),
                Integer::from(1),
                Integer::from(-1),
                Integer::from(-3_573_412_790_272i64),
                bound.clone(),
                -bound,
            ] {
                let c = pk.encrypt(&m, &mut rng).unwrap();
                assert_eq!(sk.decrypt(&c), m, "{bits}-bit key");
                let k = Integer::from(0x9e37_79b9_7f4a_7c15u64);
                if m.significant_bits() < 64 {
                    assert_eq!(sk.decrypt(&pk.mul_plain(&c, &k)), Integer::from(&m * &k));
                }
            }
        }
    }

    /// The key owner's CRT encryption gives the very ciphertext the public key gives from the
    /// same random draw, for values of every sign and size up to the plaintext bound, and it
    /// decrypts; two owner encryptions of one value differ (fresh randomness).
    #[test]
    fn owner_encryption_equals_public_encryption_from_the_same_draw() {
        let mut keys = ChaCha20Rng::seed_from_u64(23);
        for bits in [768u32, 2048] {
            let sk = OuSecretKey::generate(bits, &mut keys).unwrap();
            let pk = sk.public();
            let bound = Integer::from(Integer::u_pow_u(2, pk.plaintext_bits())) - 1u32;
            let mut values = vec![
                Integer::new(),
                Integer::from(1),
                Integer::from(-1),
                Integer::from(-3_573_412_790_272i64),
                Integer::from(u64::MAX),
                bound.clone(),
                -bound.clone(),
            ];
            let mut draw = ChaCha20Rng::seed_from_u64(bits as u64);
            for _ in 0..8 {
                let mut v = random_bits(&mut draw, pk.plaintext_bits());
                if draw.next_u32() & 1 == 1 {
                    v = -v;
                }
                values.push(v);
            }
            for (i, m) in values.iter().enumerate() {
                let seed = 1000 + i as u64;
                let owner = sk
                    .encrypt_by_crt(m, &mut ChaCha20Rng::seed_from_u64(seed))
                    .unwrap();
                let public = pk
                    .encrypt(m, &mut ChaCha20Rng::seed_from_u64(seed))
                    .unwrap();
                let chosen =
                    HeSecretKey::encrypt(&sk, m, &mut ChaCha20Rng::seed_from_u64(seed)).unwrap();
                assert_eq!(chosen, public, "{bits}-bit key, m = {m}");
                assert_eq!(owner, public, "{bits}-bit key, m = {m}");
                assert_eq!(sk.decrypt(&owner), *m);
                let again = sk
                    .encrypt_by_crt(m, &mut ChaCha20Rng::seed_from_u64(seed + 1))
                    .unwrap();
                assert_ne!(owner, again, "fresh randomness must change the ciphertext");
            }
            let over = Integer::from(&bound + 1u32);
            assert!(sk.encrypt_by_crt(&over, &mut draw).is_err());
        }
    }

    #[test]
    fn subgroup_is_the_randomizer_size_at_real_key_sizes() {
        assert_eq!(subgroup_bits(2048), 224);
        assert_eq!(subgroup_bits(3072), 256);
        assert_eq!(subgroup_bits(8192), randomizer_exponent_bits(8192));
        // Test-sized keys: half of p.
        assert_eq!(subgroup_bits(768), 128);
    }
}
