//! Oblivious transfer for the KKRT16 PSI protocol (`crate::kkrt`): base OTs over
//! Ristretto255 ([`base`]), AES-128 as PRG and code ([`prg`]), the 128 × 128 bit transpose
//! ([`transpose`]), short-message SHA-256 ([`sha`]) and the batched OPRF ([`kkrt`]). Semi-honest security throughout;
//! computational security 128 bits (AES-128, Ristretto255, SHA-256), statistical 40 bits.

pub(crate) mod base;
pub(crate) mod kkrt;
pub(crate) mod prg;
pub(crate) mod sha;
pub(crate) mod transpose;
