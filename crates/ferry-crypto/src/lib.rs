//! Ferry's cryptographic primitives — the bottom layer of the workspace.
//!
//! * [`he`]: the additively homomorphic encryption interface, implemented by [`paillier`]
//!   (Paillier with Damgård–Jurik–Nielsen fast randomisation) and [`ou`] (Okamoto–Uchiyama).
//! * [`encoding`] and [`packing`]: fixed-point numbers with checked overflow, and several values
//!   per plaintext.
//! * [`ecdh`]: hashing to the group and scalar multiplication for ECDH-PSI, in Ristretto255
//!   (default) or SM2 with SM3 (the GM suite); [`h2c`]: RFC 9380 hashing to short
//!   Weierstrass curves, which the SM2 group uses.
//! * [`gm`]: the Chinese national suite (SM2 signatures, SM3, SM4) with the standards'
//!   known-answer tests; [`at_rest`]: SM4-GCM encryption of files at rest, streamed in
//!   authenticated records.
//! * [`arith`]: the modular multiplication engine underneath the schemes.
//! * [`wire`]: versioned, length-checked byte formats for keys and ciphertexts.
//! * [`params`]: every security constant, named and justified in one place.
//!
//! Security model: semi-honest (honest-but-curious) parties; the schemes are IND-CPA.

pub mod arith;
pub mod at_rest;
pub mod batch;
pub mod ecdh;
pub mod encoding;
pub mod gm;
pub mod h2c;
pub mod he;
pub mod ou;
pub mod packing;
pub mod paillier;
pub mod params;
pub mod random;
pub mod wire;

pub use he::{HeError, HePublicKey, HeSecretKey, KeyGenError, SchemeKind};
pub use ou::{OuCiphertext, OuPublicKey, OuSecretKey};
pub use paillier::{PaillierCiphertext, PaillierPublicKey, PaillierSecretKey, Randomizer};
pub use params::{HeSettings, Suite};
pub use rug;
