//! The node's action log: every state-changing action (who, what, which object, when, from
//! which address, and the outcome) as one entry of a hash chain, the node's signed
//! checkpoints of the chain head, and the checkpoints partners sent of theirs.
//!
//! # The chain
//!
//! Entries are numbered 1, 2, 3, … (`seq`, assigned inside the inserting transaction). Each
//! stores `prev_hash`, the hash of the entry before it (32 zero bytes for entry 1), and
//!
//! ```text
//! hash = SHA-256(prev_hash (32 bytes) ‖ canonical encoding of the entry)
//! ```
//!
//! or, on a node of the GM suite (国密, [`Store::set_chain_hash`]), the same with SM3 (GB/T
//! 32905). Each entry records its algorithm: an SM3 hash is stored as `sm3:` + 64 hex digits
//! ([`SM3_HASH_PREFIX`]), a SHA-256 one as the 64 hex digits alone, so chains written before
//! (all SHA-256) verify unchanged and a chain may switch algorithm at any entry. `prev_hash` is
//! the previous entry's stored hash, prefix included; the 32 bytes it names are what is hashed.
//! A checkpoint carries the head's 32 bytes as hex without the prefix.
//!
//! The canonical encoding ([`ActionEntry::canonical_bytes`]) is the line
//! `ferry-audit-entry/1\n` followed by every field in a fixed order (`seq`, `at`, `actor`,
//! `action`, `object`, `address`, `outcome`, `status`, `detail`), each as
//! `<name>=<byte length>:<bytes>\n`, or `<name>!\n` for an absent optional field. The lengths
//! make it unambiguous whatever the text holds (error messages may contain newlines).
//!
//! # Checkpoints
//!
//! A checkpoint is the chain head (`seq`, `hash`) at a time, signed by the node. A node of the
//! default suite signs with its identity key ([`crate::ModelSigner`], ECDSA P-256 with
//! SHA-256, the key of its TLS certificate) over the version-1 statement:
//!
//! ```text
//! ferry-audit-checkpoint/1
//! party=<the node's party name>
//! seq=<decimal>
//! hash=<64 lower-case hex digits>
//! signed_at=<ISO-8601 UTC>
//! ```
//!
//! The node keeps its own (`audit_checkpoints`) and sends them to its partners, which verify
//! the signature with the certificate they pinned for it and keep them
//! (`audit_partner_checkpoints`). Each checkpoint records its algorithm
//! ([`Checkpoint::algorithm`]; absent, as in every checkpoint from before, it is ECDSA P-256),
//! so old and new ones verify side by side.
//!
//! # SM2 checkpoints (the GM suite)
//!
//! A node of the GM suite (国密) signs with its SM2 key (SM2 with SM3, GB/T 32918.2, id
//! `1234567812345678`; `identity/sm2-key.hex`) over the version-2 statement
//!
//! ```text
//! ferry-audit-checkpoint/2
//! algorithm=sm2-sm3
//! party=<name>
//! seq=<decimal>
//! hash=<64 hex digits>
//! signed_at=<ISO-8601 UTC>
//! sm2_public_key=<130 hex digits: the uncompressed SEC1 point>
//! ```
//!
//! A partner pins only the node's TLS certificate (P-256), so the checkpoint also carries the
//! SM2 public key and its **key binding** ([`Sm2KeyBinding`]): the node's identity key's ECDSA
//! P-256 signature over
//!
//! ```text
//! ferry-audit-sm2-key-binding/1
//! party=<name>
//! sm2_public_key=<130 hex digits>
//! ```
//!
//! A receiver checks the binding with the certificate it pinned for the sender, then the SM2
//! signature with the bound key, and refuses the checkpoint if either fails. The pinned
//! certificate stays the one trust root: the binding is checked against whichever certificate
//! is pinned at the time (so a certificate rotation needs nothing more), and nothing about the
//! SM2 key has to be exchanged or kept when partners pin each other. The first lines are
//! distinct from every other statement the identity key signs (model statements start
//! `ferry-model-statement/`, TLS 1.3 signs 64 spaces first), so a binding cannot be passed off
//! as anything else, nor anything else as a binding; the party's name in the binding stops
//! one party's binding from serving another's checkpoint.
//!
//! A P-256 checkpoint is accepted as before: whoever could sign it holds the identity key,
//! and so could sign a binding for any SM2 key too; refusing it would add no protection. What
//! can never pass is an SM2 checkpoint whose binding does not verify, or an algorithm label
//! changed after signing (the statement names the algorithm and the key, so a relabelled
//! checkpoint no longer verifies either way).
//!
//! # What verification finds
//!
//! [`ChainVerifier`] recomputes the chain from entry 1 and reports, entry by entry: a gap in
//! the numbers (deleted entries), an entry whose content does not hash to its stored hash
//! (edited), an entry whose `prev_hash` is not its predecessor's hash (reordered, replaced or
//! inserted), and every checkpoint whose hash differs from the recomputed chain at its `seq`
//! or whose `seq` lies beyond the chain's end (entries rewritten with fresh hashes, or the
//! newest entries deleted). Someone who can write the database can rewrite the whole chain
//! consistently and delete this node's own checkpoints; only checkpoints held elsewhere
//! (partners) catch that, and only up to the newest checkpoint they hold.

use crate::signer::SignatureAlgorithm;
use crate::time::now_utc;
use crate::{Store, StoreError, hex, to_i64, to_u64, unhex, validate_label};
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// First line of an entry's canonical encoding; a new encoding gets a new version.
pub const ENTRY_ENCODING: &str = "ferry-audit-entry/1";
/// First line of an ECDSA P-256 checkpoint's signed statement (version 1).
pub const CHECKPOINT_STATEMENT: &str = "ferry-audit-checkpoint/1";
/// First line of an SM2 checkpoint's signed statement (version 2, the GM suite).
pub const CHECKPOINT_STATEMENT_SM2: &str = "ferry-audit-checkpoint/2";
/// First line of the statement binding a party's SM2 checkpoint key to its identity key.
pub const SM2_KEY_BINDING_STATEMENT: &str = "ferry-audit-sm2-key-binding/1";
/// `prev_hash` of entry 1.
pub const GENESIS_HASH: [u8; 32] = [0; 32];
/// Prefix of a stored entry hash made with SM3 (the GM suite); without it a hash is SHA-256.
pub const SM3_HASH_PREFIX: &str = "sm3:";

/// The hash function of the chain's entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainHash {
    /// SHA-256 (the default suite, and every chain written before the GM suite).
    #[default]
    Sha256,
    /// SM3 (GB/T 32905), under the GM suite.
    Sm3,
}

impl ChainHash {
    /// The algorithm of a stored hash and its hex digits without the prefix.
    pub fn of_stored(stored: &str) -> (ChainHash, &str) {
        match stored.strip_prefix(SM3_HASH_PREFIX) {
            Some(hex) => (ChainHash::Sm3, hex),
            None => (ChainHash::Sha256, stored),
        }
    }

    /// `bytes` as an entry stores them: `sm3:` + hex, or hex.
    pub fn stored(self, bytes: &[u8; 32]) -> String {
        match self {
            ChainHash::Sha256 => hex(bytes),
            ChainHash::Sm3 => format!("{SM3_HASH_PREFIX}{}", hex(bytes)),
        }
    }

    fn digest(self, parts: &[&[u8]]) -> [u8; 32] {
        match self {
            ChainHash::Sha256 => {
                let mut h = Sha256::new();
                for p in parts {
                    h.update(p);
                }
                h.finalize().into()
            }
            ChainHash::Sm3 => ferry_crypto::gm::sm3(&parts.concat()),
        }
    }
}

/// The 32 bytes a stored hash (with or without its algorithm's prefix) names, if it is one.
fn stored_hash_bytes(stored: &str) -> Option<[u8; 32]> {
    let (_, digits) = ChainHash::of_stored(stored);
    if digits.len() != 64 || !is_lower_hex(digits) {
        return None;
    }
    unhex(digits).and_then(|b| <[u8; 32]>::try_from(b).ok())
}

/// Longest stored actor, action and address (bytes); longer text is cut and marked.
pub const MAX_SHORT_FIELD_BYTES: usize = 512;
/// Longest stored object (path parameters and the named fields of a request).
pub const MAX_OBJECT_BYTES: usize = 4096;
/// Longest stored detail (an error message).
pub const MAX_DETAIL_BYTES: usize = 8192;

/// Entries [`Store::verify_actions`] reads per database round (the lock is released between
/// rounds, so verification of a long chain does not stall the node's writes).
const VERIFY_PAGE: i64 = 10_000;
/// Problems a report lists; beyond that only their number is kept.
const MAX_REPORTED_PROBLEMS: usize = 1000;

/// How an action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
        }
    }

    fn parse(text: &str, seq: i64) -> Result<Self, StoreError> {
        match text {
            "ok" => Ok(Outcome::Ok),
            "error" => Ok(Outcome::Error),
            other => Err(StoreError::Db(format!(
                "audit entry {seq}: stored outcome '{}' is neither 'ok' nor 'error'",
                other.escape_debug()
            ))),
        }
    }
}

/// An action to record. Text longer than its field allows is cut (at a character boundary)
/// and marked, never refused: an action must be recorded whatever its error said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAction {
    /// Who: `token:<name>` for an API token, `party:<name>` for a partner, `node` for the node.
    pub actor: String,
    /// What: for the API, the method and the route (`POST /api/v1/datasets/{name}/grants`).
    pub action: String,
    /// Which object: the route's path parameters and the request's named fields.
    pub object: String,
    /// From which address: the client's socket address, `federation` for a partner's message,
    /// `local` for the node itself, `unknown` when it is not known.
    pub address: String,
    pub outcome: Outcome,
    /// The HTTP status of an API action.
    pub status: Option<u16>,
    /// The error message of a failed action, or a note on a successful one.
    pub detail: Option<String>,
}

impl NewAction {
    /// A successful action.
    pub fn ok(
        actor: impl Into<String>,
        action: impl Into<String>,
        object: impl Into<String>,
        address: impl Into<String>,
    ) -> Self {
        NewAction {
            actor: actor.into(),
            action: action.into(),
            object: object.into(),
            address: address.into(),
            outcome: Outcome::Ok,
            status: None,
            detail: None,
        }
    }

    /// The same action, failed with `error`.
    pub fn failed(mut self, error: impl Into<String>) -> Self {
        self.outcome = Outcome::Error;
        self.detail = Some(error.into());
        self
    }

    /// With a note (kept in `detail`).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// One recorded entry of the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionEntry {
    pub seq: u64,
    /// When it was recorded (ISO-8601 UTC).
    pub at: String,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub address: String,
    pub outcome: Outcome,
    pub status: Option<u16>,
    pub detail: Option<String>,
    /// The stored hash of the entry before (64 zero digits for entry 1).
    pub prev_hash: String,
    /// Hex SHA-256 of `prev_hash ‖ canonical_bytes()`, or `sm3:` and hex SM3 of the same.
    pub hash: String,
}

impl ActionEntry {
    /// The bytes the entry's hash covers after `prev_hash` (see the module docs).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        fn field(out: &mut Vec<u8>, name: &str, value: Option<&str>) {
            out.extend_from_slice(name.as_bytes());
            match value {
                Some(v) => {
                    out.extend_from_slice(format!("={}:", v.len()).as_bytes());
                    out.extend_from_slice(v.as_bytes());
                }
                None => out.push(b'!'),
            }
            out.push(b'\n');
        }
        let mut out = Vec::with_capacity(
            64 + self.at.len()
                + self.actor.len()
                + self.action.len()
                + self.object.len()
                + self.address.len()
                + self.detail.as_ref().map_or(0, String::len),
        );
        out.extend_from_slice(ENTRY_ENCODING.as_bytes());
        out.push(b'\n');
        field(&mut out, "seq", Some(&self.seq.to_string()));
        field(&mut out, "at", Some(&self.at));
        field(&mut out, "actor", Some(&self.actor));
        field(&mut out, "action", Some(&self.action));
        field(&mut out, "object", Some(&self.object));
        field(&mut out, "address", Some(&self.address));
        field(&mut out, "outcome", Some(self.outcome.as_str()));
        let status = self.status.map(|s| s.to_string());
        field(&mut out, "status", status.as_deref());
        field(&mut out, "detail", self.detail.as_deref());
        out
    }

    /// `SHA-256(prev ‖ canonical_bytes())`.
    pub fn chained_hash(&self, prev: &[u8; 32]) -> [u8; 32] {
        self.chained_hash_with(ChainHash::Sha256, prev)
    }

    /// `H(prev ‖ canonical_bytes())` with `algorithm`.
    pub fn chained_hash_with(&self, algorithm: ChainHash, prev: &[u8; 32]) -> [u8; 32] {
        algorithm.digest(&[prev, &self.canonical_bytes()])
    }

    /// The algorithm the entry's stored hash says it was made with.
    pub fn hash_algorithm(&self) -> ChainHash {
        ChainHash::of_stored(&self.hash).0
    }
}

/// Which entries [`Store::actions`] returns. `from` and `to` are ISO-8601 UTC times or a
/// leading part of one (`2024-05`, `2024-05-01`, `2024-05-01T12`): `from` is the first
/// instant included, `to` includes everything it is a prefix of (`to=2024-05-01` includes
/// that whole day).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    /// Only entries after this sequence number (paging).
    pub after_seq: Option<u64>,
    /// At most this many entries.
    pub limit: Option<u64>,
}

/// A signed statement of the chain head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The node whose chain it is.
    pub party: String,
    pub seq: u64,
    /// Hex SHA-256: the hash of entry `seq`.
    pub hash: String,
    pub signed_at: String,
    /// What `signature` is: `ecdsa-p256-sha256` (statement version 1; a checkpoint without
    /// the field, as every one from before SM2 checkpoints, is this) or `sm2-sm3` (version 2).
    #[serde(default)]
    pub algorithm: SignatureAlgorithm,
    /// Hex signature over [`Checkpoint::statement`]: ASN.1 DER ECDSA P-256 / SHA-256 by the
    /// identity key, or SM2 `r ‖ s` (64 bytes) by the key of `sm2_key`.
    pub signature: String,
    /// With an SM2 signature: the SM2 public key and its binding to the party's identity key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sm2_key: Option<Sm2KeyBinding>,
}

/// "Party P's SM2 checkpoint key is K", signed by P's identity key (the key of the TLS
/// certificate partners pin); see the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sm2KeyBinding {
    /// Hex uncompressed SEC1 SM2 public key (65 bytes, `04` first).
    pub public_key: String,
    /// Hex ASN.1 DER ECDSA P-256 / SHA-256 signature by the identity key over
    /// [`sm2_key_binding_statement`].
    pub signature: String,
}

/// The bytes a key binding's signature covers: `party`'s SM2 checkpoint key is
/// `public_key_hex`.
pub fn sm2_key_binding_statement(party: &str, public_key_hex: &str) -> Vec<u8> {
    format!("{SM2_KEY_BINDING_STATEMENT}\nparty={party}\nsm2_public_key={public_key_hex}\n")
        .into_bytes()
}

impl Checkpoint {
    /// The bytes the signature covers: statement version 1 for ECDSA P-256, version 2 (which
    /// also names the algorithm and the SM2 key) for SM2.
    pub fn statement(&self) -> Vec<u8> {
        match self.algorithm {
            SignatureAlgorithm::EcdsaP256Sha256 => format!(
                "{CHECKPOINT_STATEMENT}\nparty={}\nseq={}\nhash={}\nsigned_at={}\n",
                self.party, self.seq, self.hash, self.signed_at
            ),
            SignatureAlgorithm::Sm2Sm3 => format!(
                "{CHECKPOINT_STATEMENT_SM2}\nalgorithm={}\nparty={}\nseq={}\nhash={}\nsigned_at={}\nsm2_public_key={}\n",
                self.algorithm.as_str(),
                self.party,
                self.seq,
                self.hash,
                self.signed_at,
                self.sm2_key.as_ref().map_or("", |k| k.public_key.as_str())
            ),
        }
        .into_bytes()
    }

    /// Checks the signature. `identity_verifies(msg, sig)` says whether `sig` is the party's
    /// identity key's ECDSA P-256 signature over `msg` (with the certificate pinned for it, or
    /// the node's own key), and `identity` names that key for the error. An ECDSA checkpoint
    /// is checked with it directly; an SM2 one by its key binding first, then by the SM2
    /// signature with the bound key. The error says which check failed.
    pub fn verify_signature(
        &self,
        identity_verifies: impl Fn(&[u8], &[u8]) -> bool,
        identity: &str,
    ) -> Result<(), String> {
        let signature = unhex(&self.signature).unwrap_or_default();
        match (self.algorithm, &self.sm2_key) {
            (SignatureAlgorithm::EcdsaP256Sha256, None) => {
                if identity_verifies(&self.statement(), &signature) {
                    Ok(())
                } else {
                    Err(format!("the signature does not verify with {identity}"))
                }
            }
            (SignatureAlgorithm::EcdsaP256Sha256, Some(_)) => {
                Err("it is labelled ecdsa-p256-sha256 but carries an SM2 key binding".to_string())
            }
            (SignatureAlgorithm::Sm2Sm3, None) => {
                Err("it is signed with SM2 but carries no key binding for its SM2 key".to_string())
            }
            (SignatureAlgorithm::Sm2Sm3, Some(key)) => {
                let binding = unhex(&key.signature).unwrap_or_default();
                let statement = sm2_key_binding_statement(&self.party, &key.public_key);
                if !identity_verifies(&statement, &binding) {
                    return Err(format!(
                        "the binding of its SM2 key to '{}' does not verify with {identity}",
                        self.party
                    ));
                }
                let public_key = unhex(&key.public_key).unwrap_or_default();
                match ferry_crypto::gm::sm2_verify(&public_key, &self.statement(), &signature) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(
                        "the SM2 signature does not verify with the SM2 key bound to it"
                            .to_string(),
                    ),
                    Err(e) => Err(format!("its SM2 public key is unusable: {e}")),
                }
            }
        }
    }

    /// Checks every field's form (a checkpoint from a partner is untrusted input); errors name
    /// the field.
    pub fn check_form(&self) -> Result<(), StoreError> {
        validate_label("checkpoint party", &self.party)?;
        let at = format!("checkpoint seq {} of '{}'", self.seq, self.party);
        if self.seq == 0 {
            return Err(StoreError::invalid(format!(
                "checkpoint of '{}': seq must be at least 1",
                self.party
            )));
        }
        to_i64(self.seq, "checkpoint seq")?;
        if self.hash.len() != 64 || !is_lower_hex(&self.hash) {
            return Err(StoreError::invalid(format!(
                "{at}: hash must be 64 lower-case hex digits"
            )));
        }
        if !is_timestamp(&self.signed_at) {
            return Err(StoreError::invalid(format!(
                "{at}: signed_at '{}' is not an ISO-8601 UTC time like 2024-05-01T12:34:56.789Z",
                self.signed_at.escape_debug()
            )));
        }
        // An ASN.1 DER P-256 signature is at most 72 bytes.
        let der_form = |sig: &str| !sig.is_empty() && sig.len() <= 2 * 80 && is_lower_hex(sig);
        match self.algorithm {
            SignatureAlgorithm::EcdsaP256Sha256 => {
                if !der_form(&self.signature) {
                    return Err(StoreError::invalid(format!(
                        "{at}: signature must be 1 to 80 bytes as lower-case hex"
                    )));
                }
                if self.sm2_key.is_some() {
                    return Err(StoreError::invalid(format!(
                        "{at}: an ecdsa-p256-sha256 checkpoint carries no sm2_key"
                    )));
                }
            }
            SignatureAlgorithm::Sm2Sm3 => {
                let sm2_bytes = ferry_crypto::gm::SM2_SIGNATURE_BYTES;
                if self.signature.len() != 2 * sm2_bytes || !is_lower_hex(&self.signature) {
                    return Err(StoreError::invalid(format!(
                        "{at}: an SM2 signature must be {sm2_bytes} bytes as lower-case hex"
                    )));
                }
                let Some(key) = &self.sm2_key else {
                    return Err(StoreError::invalid(format!(
                        "{at}: an sm2-sm3 checkpoint must carry sm2_key (its SM2 public key and key binding)"
                    )));
                };
                if key.public_key.len() != 130
                    || !key.public_key.starts_with("04")
                    || !is_lower_hex(&key.public_key)
                {
                    return Err(StoreError::invalid(format!(
                        "{at}: sm2_key.public_key must be an uncompressed point (04 and 64 bytes) as lower-case hex"
                    )));
                }
                if !der_form(&key.signature) {
                    return Err(StoreError::invalid(format!(
                        "{at}: sm2_key.signature must be 1 to 80 bytes as lower-case hex"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A partner's checkpoint as this node received it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedCheckpoint {
    #[serde(flatten)]
    pub checkpoint: Checkpoint,
    pub received_at: String,
}

/// What [`Store::record_partner_checkpoint`] did with a validly signed checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "receipt", rename_all = "snake_case")]
pub enum Receipt {
    /// Kept.
    Stored,
    /// The same checkpoint was already kept.
    Duplicate,
    /// Kept, but the partner had signed another hash for the same `seq` before: its chain was
    /// rewritten (both are kept as evidence).
    Conflict { earlier_hash: String },
}

/// A checkpoint to check a chain against, with who held it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldCheckpoint {
    #[serde(flatten)]
    pub checkpoint: Checkpoint,
    /// `this node`, or the partner (or file) it came from.
    pub holder: String,
}

/// What kind of mismatch a [`ChainProblem`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Sequence numbers are missing: entries were deleted.
    Missing,
    /// The entry's content does not hash to its stored hash: it was edited.
    Modified,
    /// The entry's `prev_hash` is not its predecessor's hash: entries were reordered,
    /// replaced or inserted.
    Unlinked,
    /// Entries arrive out of order (only in an export given to the verifier).
    OutOfOrder,
    /// The recomputed chain differs from a checkpoint at its `seq`.
    CheckpointMismatch,
    /// A checkpoint lies beyond the chain's end: the newest entries were deleted.
    Truncated,
    /// A checkpoint's signature does not verify with the node's key.
    BadSignature,
}

/// One mismatch, naming the first entry it concerns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainProblem {
    pub seq: u64,
    pub kind: ProblemKind,
    pub message: String,
}

/// The outcome of a verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    /// True when no problem was found.
    pub ok: bool,
    /// Entries read.
    pub entries: u64,
    /// The last entry's number and stored hash (`None`: no entries).
    pub head_seq: Option<u64>,
    pub head_hash: Option<String>,
    /// Checkpoints compared with the chain (signature-checked ones only).
    pub checkpoints_checked: u64,
    /// The newest checkpoint that matched.
    pub last_matching_checkpoint: Option<u64>,
    /// The first problem (the first entry that does not match).
    pub first_problem: Option<ChainProblem>,
    /// Every problem, up to 1000, in chain order.
    pub problems: Vec<ChainProblem>,
    /// Problems found beyond the ones listed.
    pub more_problems: u64,
}

/// Recomputes a chain entry by entry (in `seq` order) and compares it with checkpoints.
/// [`Store::verify_actions`] feeds it from the database; `ferry audit verify` also feeds it an
/// export together with checkpoints a partner held.
pub struct ChainVerifier {
    next_seq: u64,
    /// The chain recomputed from the entries' content alone, never from stored hashes.
    computed: [u8; 32],
    /// The stored hash of the entry last read (what the next `prev_hash` must be).
    last_stored: String,
    checkpoints: Vec<HeldCheckpoint>,
    next_checkpoint: usize,
    report: ChainReport,
}

impl ChainVerifier {
    /// A verifier that compares the chain with `checkpoints` (their signatures must already be
    /// checked; see [`ChainVerifier::bad_signature`]).
    pub fn new(mut checkpoints: Vec<HeldCheckpoint>) -> Self {
        checkpoints.sort_by_key(|c| c.checkpoint.seq);
        ChainVerifier {
            next_seq: 1,
            computed: GENESIS_HASH,
            last_stored: hex(&GENESIS_HASH),
            checkpoints,
            next_checkpoint: 0,
            report: ChainReport {
                ok: true,
                entries: 0,
                head_seq: None,
                head_hash: None,
                checkpoints_checked: 0,
                last_matching_checkpoint: None,
                first_problem: None,
                problems: Vec::new(),
                more_problems: 0,
            },
        }
    }

    /// Records a checkpoint whose signature did not verify (it is not compared).
    pub fn bad_signature(&mut self, cp: &HeldCheckpoint) {
        self.problem(
            cp.checkpoint.seq,
            ProblemKind::BadSignature,
            format!(
                "the checkpoint of entry {} signed at {} (held by {}) does not carry a valid signature of '{}': it was forged or edited",
                cp.checkpoint.seq, cp.checkpoint.signed_at, cp.holder, cp.checkpoint.party
            ),
        );
    }

    fn problem(&mut self, seq: u64, kind: ProblemKind, message: String) {
        let problem = ChainProblem { seq, kind, message };
        if self.report.first_problem.is_none() {
            self.report.first_problem = Some(problem.clone());
        }
        if self.report.problems.len() < MAX_REPORTED_PROBLEMS {
            self.report.problems.push(problem);
        } else {
            self.report.more_problems += 1;
        }
    }

    /// Where the last matching checkpoint leaves the search for a change.
    fn since_last_match(&self) -> u64 {
        self.report.last_matching_checkpoint.map_or(1, |s| s + 1)
    }

    /// Checks one entry (entries must come in increasing `seq`).
    pub fn push(&mut self, e: &ActionEntry) {
        self.report.entries += 1;
        if e.seq < self.next_seq {
            self.problem(
                e.seq,
                ProblemKind::OutOfOrder,
                format!(
                    "entry {} comes after entry {}: entries are out of order or repeated",
                    e.seq,
                    self.next_seq.saturating_sub(1)
                ),
            );
            return;
        }
        let gap = e.seq > self.next_seq;
        if gap {
            let (first, last) = (self.next_seq, e.seq - 1);
            self.problem(
                first,
                ProblemKind::Missing,
                if first == last {
                    format!("entry {first} is missing (deleted)")
                } else {
                    format!("entries {first} to {last} are missing (deleted)")
                },
            );
        }
        // Checkpoints of entries that are not there.
        while let Some(cp) = self.checkpoints.get(self.next_checkpoint)
            && cp.checkpoint.seq < e.seq
        {
            let msg = format!(
                "the checkpoint of entry {} signed at {} (held by {}) names an entry that is missing",
                cp.checkpoint.seq, cp.checkpoint.signed_at, cp.holder
            );
            let seq = cp.checkpoint.seq;
            self.next_checkpoint += 1;
            self.report.checkpoints_checked += 1;
            self.problem(seq, ProblemKind::CheckpointMismatch, msg);
        }
        let stored_prev = stored_hash_bytes(&e.prev_hash);
        let algorithm = e.hash_algorithm();
        let content_ok = stored_prev
            .is_some_and(|p| algorithm.stored(&e.chained_hash_with(algorithm, &p)) == e.hash);
        let linked = e.prev_hash == self.last_stored;
        if !content_ok {
            self.problem(
                e.seq,
                ProblemKind::Modified,
                if stored_prev.is_none() {
                    format!(
                        "entry {}: prev_hash '{}' is not 64 lower-case hex digits (after 'sm3:' for SM3) (the entry was edited)",
                        e.seq,
                        e.prev_hash.escape_debug()
                    )
                } else {
                    format!(
                        "entry {} ({} by {} at {}) does not match its hash: it was edited{}",
                        e.seq,
                        e.action,
                        e.actor,
                        e.at,
                        if linked {
                            ""
                        } else {
                            ", or moved here from elsewhere in the chain"
                        }
                    )
                },
            );
        } else if !linked && !gap {
            self.problem(
                e.seq,
                ProblemKind::Unlinked,
                format!(
                    "entry {}: its prev_hash is not the hash of entry {}: entries were reordered, replaced or inserted here",
                    e.seq,
                    e.seq - 1
                ),
            );
        }
        self.computed = e.chained_hash_with(algorithm, &self.computed);
        self.last_stored = e.hash.clone();
        self.next_seq = e.seq.saturating_add(1);
        self.report.head_seq = Some(e.seq);
        self.report.head_hash = Some(e.hash.clone());
        while let Some(cp) = self.checkpoints.get(self.next_checkpoint)
            && cp.checkpoint.seq == e.seq
        {
            let matches = cp.checkpoint.hash == hex(&self.computed);
            let msg = format!(
                "the chain up to entry {} no longer matches the checkpoint signed at {} (held by {}): an entry from {} to {} was changed, deleted or reordered since",
                e.seq,
                cp.checkpoint.signed_at,
                cp.holder,
                self.since_last_match(),
                e.seq
            );
            self.next_checkpoint += 1;
            self.report.checkpoints_checked += 1;
            if matches {
                self.report.last_matching_checkpoint = Some(e.seq);
            } else {
                self.problem(
                    self.since_last_match(),
                    ProblemKind::CheckpointMismatch,
                    msg,
                );
            }
        }
    }

    /// The report, after checking the checkpoints beyond the last entry.
    pub fn finish(mut self) -> ChainReport {
        let end = self.next_seq - 1;
        while let Some(cp) = self.checkpoints.get(self.next_checkpoint).cloned() {
            self.next_checkpoint += 1;
            self.report.checkpoints_checked += 1;
            self.problem(
                end + 1,
                ProblemKind::Truncated,
                format!(
                    "the checkpoint of entry {} signed at {} (held by {}) lies beyond the chain's end ({}): entries {} to {} were deleted",
                    cp.checkpoint.seq,
                    cp.checkpoint.signed_at,
                    cp.holder,
                    if end == 0 {
                        "there are no entries".to_string()
                    } else {
                        format!("entry {end}")
                    },
                    end + 1,
                    cp.checkpoint.seq
                ),
            );
        }
        // Problems in chain order (checkpoint problems may name earlier entries).
        self.report.problems.sort_by_key(|p| p.seq);
        self.report.first_problem = self.report.problems.first().cloned();
        self.report.ok = self.report.problems.is_empty() && self.report.more_problems == 0;
        self.report
    }
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The shape of stored times; a query bound may be any leading part of it.
const TIME_TEMPLATE: &str = "0000-00-00T00:00:00.000Z";

fn is_time_prefix(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= TIME_TEMPLATE.len()
        && text.bytes().zip(TIME_TEMPLATE.bytes()).all(|(c, t)| {
            if t == b'0' {
                c.is_ascii_digit()
            } else {
                c == t
            }
        })
}

fn is_timestamp(text: &str) -> bool {
    text.len() == TIME_TEMPLATE.len() && is_time_prefix(text)
}

/// `text` cut to at most `max` bytes at a character boundary, marked when cut.
fn clip(text: &str, max: usize) -> String {
    const MARK: &str = "…[cut]";
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &text[..end])
}

const ENTRY_COLUMNS: &str =
    "seq, occurred_at, actor, action, object, address, outcome, status, detail, prev_hash, hash";

fn entry_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawEntry> {
    Ok(RawEntry {
        seq: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        object: r.get(4)?,
        address: r.get(5)?,
        outcome: r.get(6)?,
        status: r.get(7)?,
        detail: r.get(8)?,
        prev_hash: r.get(9)?,
        hash: r.get(10)?,
    })
}

struct RawEntry {
    seq: i64,
    at: String,
    actor: String,
    action: String,
    object: String,
    address: String,
    outcome: String,
    status: Option<i64>,
    detail: Option<String>,
    prev_hash: String,
    hash: String,
}

impl RawEntry {
    fn finish(self) -> Result<ActionEntry, StoreError> {
        let status = self
            .status
            .map(|s| {
                u16::try_from(s).map_err(|_| {
                    StoreError::Db(format!(
                        "audit entry {}: stored status {s} is not an HTTP status",
                        self.seq
                    ))
                })
            })
            .transpose()?;
        Ok(ActionEntry {
            seq: to_u64(self.seq, "audit entry seq")?,
            outcome: Outcome::parse(&self.outcome, self.seq)?,
            at: self.at,
            actor: self.actor,
            action: self.action,
            object: self.object,
            address: self.address,
            status,
            detail: self.detail,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// The columns a checkpoint is read from (both tables), in [`checkpoint_row`]'s order.
const CHECKPOINT_COLUMNS: &str =
    "seq, hash, signed_at, signature, algorithm, sm2_public_key, key_binding";

/// A checkpoint row as stored: party, then [`CHECKPOINT_COLUMNS`].
struct CheckpointRow {
    party: String,
    seq: i64,
    hash: String,
    signed_at: String,
    signature: String,
    algorithm: String,
    sm2_public_key: Option<String>,
    key_binding: Option<String>,
}

/// Reads `party` (column 0) and [`CHECKPOINT_COLUMNS`] (columns 1 to 7).
fn checkpoint_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CheckpointRow> {
    Ok(CheckpointRow {
        party: r.get(0)?,
        seq: r.get(1)?,
        hash: r.get(2)?,
        signed_at: r.get(3)?,
        signature: r.get(4)?,
        algorithm: r.get(5)?,
        sm2_public_key: r.get(6)?,
        key_binding: r.get(7)?,
    })
}

fn to_checkpoint(row: CheckpointRow) -> Result<Checkpoint, StoreError> {
    let algorithm = SignatureAlgorithm::from_name(&row.algorithm).ok_or_else(|| {
        StoreError::Db(format!(
            "checkpoint seq {} of '{}': stored algorithm '{}' is unknown",
            row.seq,
            row.party,
            row.algorithm.escape_debug()
        ))
    })?;
    let sm2_key = match (row.sm2_public_key, row.key_binding) {
        (Some(public_key), Some(signature)) => Some(Sm2KeyBinding {
            public_key,
            signature,
        }),
        _ => None,
    };
    Ok(Checkpoint {
        party: row.party,
        seq: to_u64(row.seq, "checkpoint seq")?,
        hash: row.hash,
        signed_at: row.signed_at,
        algorithm,
        signature: row.signature,
        sm2_key,
    })
}

/// Whether `signature` is the signature over `msg` of the key in the DER certificate
/// `cert_der` (ECDSA P-256 with SHA-256, ASN.1 DER), as a partner's pinned certificate.
pub fn verify_with_certificate(cert_der: &[u8], msg: &[u8], signature: &[u8]) -> bool {
    let der = rustls_pki_types::CertificateDer::from(cert_der);
    let Ok(cert) = webpki::EndEntityCert::try_from(&der) else {
        return false;
    };
    cert.verify_signature(webpki::ring::ECDSA_P256_SHA256, msg, signature)
        .is_ok()
}

impl Store {
    /// Hashes entries recorded from now on with `algorithm` (SM3 on a node of the GM suite);
    /// entries already there keep theirs.
    pub fn set_chain_hash(&mut self, algorithm: ChainHash) {
        self.chain_hash = algorithm;
    }

    /// Appends an action to the chain (one transaction) and returns the entry as stored.
    pub fn record_action(&self, new: &NewAction) -> Result<ActionEntry, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let head: Option<(i64, String)> = tx
            .query_row(
                "SELECT seq, hash FROM audit_actions ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (seq, prev, prev_stored) = match head {
            None => (1, GENESIS_HASH, hex(&GENESIS_HASH)),
            Some((seq, hash)) => {
                let prev = stored_hash_bytes(&hash).ok_or_else(|| {
                    StoreError::Db(format!(
                        "audit entry {seq}: stored hash is not 64 hex digits; run `ferry audit verify`"
                    ))
                })?;
                (to_u64(seq, "audit entry seq")? + 1, prev, hash)
            }
        };
        let mut entry = ActionEntry {
            seq,
            at: now_utc(),
            actor: clip(&new.actor, MAX_SHORT_FIELD_BYTES),
            action: clip(&new.action, MAX_SHORT_FIELD_BYTES),
            object: clip(&new.object, MAX_OBJECT_BYTES),
            address: clip(&new.address, MAX_SHORT_FIELD_BYTES),
            outcome: new.outcome,
            status: new.status,
            detail: new.detail.as_deref().map(|d| clip(d, MAX_DETAIL_BYTES)),
            prev_hash: prev_stored,
            hash: String::new(),
        };
        let algorithm = self.chain_hash;
        entry.hash = algorithm.stored(&entry.chained_hash_with(algorithm, &prev));
        tx.execute(
            &format!(
                "INSERT INTO audit_actions ({ENTRY_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ),
            params![
                to_i64(entry.seq, "audit entry seq")?,
                entry.at,
                entry.actor,
                entry.action,
                entry.object,
                entry.address,
                entry.outcome.as_str(),
                entry.status.map(i64::from),
                entry.detail,
                entry.prev_hash,
                entry.hash
            ],
        )?;
        tx.commit()?;
        Ok(entry)
    }

    /// Entries in `seq` order, filtered by `q`. Errors name the bad bound.
    pub fn actions(&self, q: &ActionQuery) -> Result<Vec<ActionEntry>, StoreError> {
        for (name, bound) in [("from", &q.from), ("to", &q.to)] {
            if let Some(b) = bound
                && !is_time_prefix(b)
            {
                return Err(StoreError::invalid(format!(
                    "'{name}' = '{}' is not a UTC time or date like 2024-05-01 or 2024-05-01T12:34:56Z",
                    b.escape_debug()
                )));
            }
        }
        // `to` compares the leading part of each time (a date includes its whole day); a
        // trailing 'Z' of a full time given as `...:56Z` is not part of the stored prefix.
        let to = q.to.as_deref().map(|t| t.trim_end_matches('Z').to_string());
        let after = to_i64(q.after_seq.unwrap_or(0), "after_seq")?;
        let limit = match q.limit {
            Some(l) => to_i64(l, "limit")?,
            None => -1,
        };
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {ENTRY_COLUMNS} FROM audit_actions \
             WHERE seq > ?1 \
               AND (?2 IS NULL OR occurred_at >= ?2) \
               AND (?3 IS NULL OR substr(occurred_at, 1, length(?3)) <= ?3) \
             ORDER BY seq LIMIT ?4"
        ))?;
        let rows = stmt.query_map(params![after, q.from, to, limit], entry_row)?;
        rows.map(|r| r?.finish()).collect()
    }

    /// The chain head: the last entry's number and hash (`None` while the log is empty).
    pub fn action_head(&self) -> Result<Option<(u64, String)>, StoreError> {
        let head: Option<(i64, String)> = self
            .conn()
            .query_row(
                "SELECT seq, hash FROM audit_actions ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        head.map(|(seq, hash)| Ok((to_u64(seq, "audit entry seq")?, hash)))
            .transpose()
    }

    /// Signs a checkpoint of the chain head as `party` (this node's name) and keeps it.
    /// Returns `None` while the log is empty; if the head is already covered by the newest
    /// checkpoint, returns that one.
    pub fn sign_checkpoint(&self, party: &str) -> Result<Option<Checkpoint>, StoreError> {
        validate_label("party", party)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let head: Option<(i64, String)> = tx
            .query_row(
                "SELECT seq, hash FROM audit_actions ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((seq, hash)) = head else {
            return Ok(None);
        };
        let newest = tx
            .query_row(
                &format!(
                    "SELECT party, {CHECKPOINT_COLUMNS} FROM audit_checkpoints \
                     ORDER BY seq DESC LIMIT 1"
                ),
                [],
                checkpoint_row,
            )
            .optional()?;
        let signer = self.signer();
        let algorithm = signer.record_algorithm();
        if let Some(row) = newest
            && row.seq == seq
            && row.party == party
        {
            let cp = to_checkpoint(row)?;
            // Signed before the node switched suites: signed again (below) with the key of
            // the suite it has now, replacing the node's own copy (partners keep theirs).
            if cp.algorithm == algorithm {
                return Ok(Some(cp));
            }
        }
        // The checkpoint names the head's 32 bytes, without the algorithm's prefix.
        let hash = ChainHash::of_stored(&hash).1.to_string();
        let mut cp = Checkpoint {
            party: party.to_string(),
            seq: to_u64(seq, "audit entry seq")?,
            hash,
            signed_at: now_utc(),
            algorithm,
            signature: String::new(),
            sm2_key: None,
        };
        match signer.sm2() {
            None => cp.signature = hex(&signer.sign(&cp.statement())?),
            Some(sm2) => {
                let public_key = hex(&sm2.public_key());
                let binding = signer.sign(&sm2_key_binding_statement(party, &public_key))?;
                cp.sm2_key = Some(Sm2KeyBinding {
                    public_key,
                    signature: hex(&binding),
                });
                cp.signature = hex(&sm2.sign(&cp.statement()));
            }
        }
        let (public_key, binding) = match &cp.sm2_key {
            Some(k) => (Some(&k.public_key), Some(&k.signature)),
            None => (None, None),
        };
        tx.execute(
            "INSERT INTO audit_checkpoints \
             (seq, party, hash, signed_at, signature, algorithm, sm2_public_key, key_binding) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (seq) DO UPDATE SET party = excluded.party, hash = excluded.hash, \
             signed_at = excluded.signed_at, signature = excluded.signature, \
             algorithm = excluded.algorithm, sm2_public_key = excluded.sm2_public_key, \
             key_binding = excluded.key_binding",
            params![
                seq,
                cp.party,
                cp.hash,
                cp.signed_at,
                cp.signature,
                cp.algorithm.as_str(),
                public_key,
                binding
            ],
        )?;
        tx.commit()?;
        Ok(Some(cp))
    }

    /// This node's own checkpoints, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT party, {CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY seq"
        ))?;
        let rows = stmt.query_map([], checkpoint_row)?;
        rows.map(|r| to_checkpoint(r?)).collect()
    }

    /// Keeps a checkpoint `cp.party` sent, after checking its form and its signature with
    /// `cert_der`, the certificate this node pinned for that partner (an SM2 checkpoint: its
    /// key binding with the certificate, then the SM2 signature with the bound key). Nothing
    /// is kept from a checkpoint that fails a check (the error names the party and the check).
    pub fn record_partner_checkpoint(
        &self,
        cp: &Checkpoint,
        cert_der: &[u8],
    ) -> Result<Receipt, StoreError> {
        cp.check_form()?;
        cp.verify_signature(
            |msg, sig| verify_with_certificate(cert_der, msg, sig),
            &format!("the certificate pinned for '{}'", cp.party),
        )
        .map_err(|reason| {
            StoreError::invalid(format!(
                "checkpoint seq {} from '{}' ({}): {reason}",
                cp.seq,
                cp.party,
                cp.algorithm.as_str()
            ))
        })?;
        let seq = to_i64(cp.seq, "checkpoint seq")?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let earlier: Vec<String> = {
            let mut stmt = tx.prepare(
                "SELECT hash FROM audit_partner_checkpoints WHERE partner = ?1 AND seq = ?2",
            )?;
            stmt.query_map(params![cp.party, seq], |r| r.get::<_, String>(0))?
                .collect::<Result<_, _>>()?
        };
        if earlier.contains(&cp.hash) {
            return Ok(Receipt::Duplicate);
        }
        let (public_key, binding) = match &cp.sm2_key {
            Some(k) => (Some(&k.public_key), Some(&k.signature)),
            None => (None, None),
        };
        tx.execute(
            "INSERT INTO audit_partner_checkpoints \
             (partner, seq, hash, signed_at, signature, received_at, algorithm, sm2_public_key, key_binding) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                cp.party,
                seq,
                cp.hash,
                cp.signed_at,
                cp.signature,
                now_utc(),
                cp.algorithm.as_str(),
                public_key,
                binding
            ],
        )?;
        tx.commit()?;
        Ok(match earlier.into_iter().next() {
            None => Receipt::Stored,
            Some(earlier_hash) => Receipt::Conflict { earlier_hash },
        })
    }

    /// Checkpoints partners sent (of `partner` only, if given), by partner then `seq`.
    pub fn partner_checkpoints(
        &self,
        partner: Option<&str>,
    ) -> Result<Vec<ReceivedCheckpoint>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT partner, {CHECKPOINT_COLUMNS}, received_at FROM audit_partner_checkpoints \
             WHERE (?1 IS NULL OR partner = ?1) ORDER BY partner, seq, received_at"
        ))?;
        let rows = stmt.query_map([partner], |r| {
            Ok((checkpoint_row(r)?, r.get::<_, String>(8)?))
        })?;
        rows.map(|r| {
            let (row, received_at) = r?;
            Ok(ReceivedCheckpoint {
                checkpoint: to_checkpoint(row)?,
                received_at,
            })
        })
        .collect()
    }

    /// Recomputes the whole chain and compares it with this node's own checkpoints (their
    /// signatures checked with the node's key) and with `extra` ones (e.g. what a partner
    /// held; their signatures are the caller's to check). Problems are in the report; an
    /// error means the log could not be read at all.
    pub fn verify_actions(&self, extra: &[HeldCheckpoint]) -> Result<ChainReport, StoreError> {
        let own = self.checkpoints()?;
        let mut good = extra.to_vec();
        let mut bad = Vec::new();
        for cp in own {
            let held = HeldCheckpoint {
                checkpoint: cp,
                holder: "this node".into(),
            };
            let signed = held
                .checkpoint
                .verify_signature(
                    |msg, sig| self.signer().verify(msg, sig),
                    "this node's identity key",
                )
                .is_ok();
            if signed {
                good.push(held);
            } else {
                bad.push(held);
            }
        }
        let mut verifier = ChainVerifier::new(good);
        for cp in &bad {
            verifier.bad_signature(cp);
        }
        let mut after: i64 = 0;
        loop {
            let page: Vec<RawEntry> = {
                let conn = self.conn();
                let mut stmt = conn.prepare(&format!(
                    "SELECT {ENTRY_COLUMNS} FROM audit_actions WHERE seq > ?1 ORDER BY seq LIMIT ?2"
                ))?;
                stmt.query_map(params![after, VERIFY_PAGE], entry_row)?
                    .collect::<Result<_, _>>()
                    .map_err(|e| {
                        StoreError::Db(format!(
                            "cannot read the audit entries after entry {after}: {e}"
                        ))
                    })?
            };
            let Some(last) = page.last() else {
                break;
            };
            after = last.seq;
            for raw in page {
                let seq = raw.seq;
                match raw.finish() {
                    Ok(entry) => verifier.push(&entry),
                    Err(e) => verifier.problem(
                        u64::try_from(seq).unwrap_or(0),
                        ProblemKind::Modified,
                        format!("entry {seq} cannot be read: {e}"),
                    ),
                }
            }
        }
        Ok(verifier.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, detail: Option<&str>) -> ActionEntry {
        ActionEntry {
            seq,
            at: "2024-05-01T12:00:00.000Z".into(),
            actor: "token:ops".into(),
            action: "POST /api/v1/datasets".into(),
            object: "name=loans".into(),
            address: "127.0.0.1:5000".into(),
            outcome: Outcome::Ok,
            status: Some(200),
            detail: detail.map(str::to_string),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn encoding_is_unambiguous() {
        // Moving text between fields, or a missing versus an empty detail, changes the bytes.
        let a = entry(1, None);
        let mut b = a.clone();
        b.detail = Some(String::new());
        assert_ne!(a.canonical_bytes(), b.canonical_bytes());
        let mut c = a.clone();
        c.actor = "token:ops\naction=x".into();
        assert_ne!(a.canonical_bytes(), c.canonical_bytes());
        let text = String::from_utf8(a.canonical_bytes()).unwrap();
        assert!(text.starts_with("ferry-audit-entry/1\nseq=1:1\n"), "{text}");
        assert!(text.ends_with("status=3:200\ndetail!\n"), "{text}");
    }

    #[test]
    fn time_bounds() {
        for ok in [
            "2024",
            "2024-05",
            "2024-05-01",
            "2024-05-01T12:34",
            "2024-05-01T12:34:56.789Z",
        ] {
            assert!(is_time_prefix(ok), "{ok}");
        }
        for bad in [
            "",
            "24-05",
            "2024/05",
            "2024-05-01 12:00",
            "2024-05-01T12:34:56.789Zx",
            "'; DROP",
        ] {
            assert!(!is_time_prefix(bad), "{bad}");
        }
        assert!(is_timestamp("2024-05-01T12:34:56.789Z"));
        assert!(!is_timestamp("2024-05-01"));
    }

    #[test]
    fn a_chain_switches_to_sm3_and_every_entry_verifies_with_its_own_algorithm() {
        let tmp = tempfile::tempdir().unwrap();
        let open = |algorithm| {
            let mut store = Store::open(
                &tmp.path().join("state"),
                &tmp.path().join("data"),
                crate::ModelSigner::generate().unwrap(),
            )
            .unwrap();
            store.set_chain_hash(algorithm);
            store
        };
        let action = |i: usize| NewAction::ok("token:ops", "POST /x", format!("i={i}"), "local");
        // Three SHA-256 entries (a node from before), then the node switches to the GM suite.
        let store = open(ChainHash::Sha256);
        for i in 0..3 {
            store.record_action(&action(i)).unwrap();
        }
        drop(store);
        let store = open(ChainHash::Sm3);
        for i in 3..6 {
            store.record_action(&action(i)).unwrap();
        }
        let all = store.actions(&ActionQuery::default()).unwrap();
        assert!(all[..3].iter().all(|e| e.hash.len() == 64));
        assert!(all[3..].iter().all(|e| e.hash.starts_with(SM3_HASH_PREFIX)));
        // The link is the stored text; the SM3 hash is SM3(prev bytes ‖ encoding), GB/T 32905.
        assert_eq!(all[4].prev_hash, all[3].hash);
        let prev: [u8; 32] = unhex(&all[4].prev_hash[4..]).unwrap().try_into().unwrap();
        let mut input = prev.to_vec();
        input.extend_from_slice(&all[4].canonical_bytes());
        assert_eq!(
            all[4].hash,
            format!("sm3:{}", hex(&ferry_crypto::gm::sm3(&input)))
        );
        // A checkpoint names the SM3 head's bytes without the prefix, and the chain verifies.
        let cp = store.sign_checkpoint("bank").unwrap().unwrap();
        assert!(cp.check_form().is_ok());
        assert_eq!(format!("sm3:{}", cp.hash), all[5].hash);
        let report = store.verify_actions(&[]).unwrap();
        assert!(report.ok, "{report:?}");
        assert_eq!(report.last_matching_checkpoint, Some(6));
        // An edited SM3 entry, and an SM3 entry relabelled as SHA-256, are both named.
        let mut chain = all.clone();
        chain[4].object = "i=40".into();
        let r = verify(&chain, Vec::new());
        assert_eq!(r.first_problem.unwrap().seq, 5);
        let mut relabelled = all.clone();
        relabelled[4].hash = relabelled[4].hash[4..].to_string();
        relabelled[5].prev_hash = relabelled[4].hash.clone();
        let r = verify(&relabelled, Vec::new());
        let p = r.first_problem.unwrap();
        assert_eq!((p.seq, p.kind), (5, ProblemKind::Modified), "{}", p.message);
    }

    #[test]
    fn clip_cuts_at_a_character_boundary() {
        assert_eq!(clip("short", 10), "short");
        let cut = clip(&"数据".repeat(100), 50);
        assert!(cut.len() <= 50 && cut.ends_with("[cut]"), "{cut}");
    }

    fn chain(n: u64) -> Vec<ActionEntry> {
        let mut prev = GENESIS_HASH;
        (1..=n)
            .map(|seq| {
                let mut e = entry(seq, Some(&format!("note {seq}")));
                e.prev_hash = hex(&prev);
                prev = e.chained_hash(&prev);
                e.hash = hex(&prev);
                e
            })
            .collect()
    }

    fn verify(entries: &[ActionEntry], cps: Vec<HeldCheckpoint>) -> ChainReport {
        let mut v = ChainVerifier::new(cps);
        for e in entries {
            v.push(e);
        }
        v.finish()
    }

    fn held(e: &ActionEntry) -> HeldCheckpoint {
        HeldCheckpoint {
            checkpoint: Checkpoint {
                party: "bank".into(),
                seq: e.seq,
                hash: e.hash.clone(),
                signed_at: "2024-05-01T12:00:00.000Z".into(),
                algorithm: SignatureAlgorithm::EcdsaP256Sha256,
                signature: "00".into(),
                sm2_key: None,
            },
            holder: "telco".into(),
        }
    }

    #[test]
    fn verifier_names_the_first_bad_entry() {
        let good = chain(6);
        let r = verify(&good, vec![held(&good[2]), held(&good[5])]);
        assert!(r.ok, "{r:?}");
        assert_eq!((r.entries, r.checkpoints_checked), (6, 2));
        assert_eq!(r.last_matching_checkpoint, Some(6));

        let mut edited = good.clone();
        edited[3].object = "name=other".into();
        let r = verify(&edited, vec![]);
        let first = r.first_problem.unwrap();
        assert_eq!((first.seq, first.kind), (4, ProblemKind::Modified));
        assert_eq!(
            r.problems.len(),
            1,
            "one edit is one problem: {:?}",
            r.problems
        );

        let mut deleted = good.clone();
        deleted.remove(2);
        let r = verify(&deleted, vec![]);
        let first = r.first_problem.unwrap();
        assert_eq!(
            (first.seq, first.kind),
            (3, ProblemKind::Missing),
            "{first:?}"
        );
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);

        // The whole chain rewritten from entry 3 on with fresh hashes: consistent in itself,
        // caught by a checkpoint held elsewhere.
        let mut rewritten = good.clone();
        rewritten[2].actor = "token:someone-else".into();
        let mut prev: [u8; 32] = unhex(&rewritten[2].prev_hash).unwrap().try_into().unwrap();
        for e in rewritten.iter_mut().skip(2) {
            e.prev_hash = hex(&prev);
            prev = e.chained_hash(&prev);
            e.hash = hex(&prev);
        }
        assert!(verify(&rewritten, vec![]).ok);
        let r = verify(&rewritten, vec![held(&good[1]), held(&good[4])]);
        let first = r.first_problem.unwrap();
        assert_eq!(
            (first.seq, first.kind),
            (3, ProblemKind::CheckpointMismatch),
            "{first:?}"
        );
        assert!(first.message.contains("from 3 to 5"), "{}", first.message);

        // The newest entries deleted: only a checkpoint beyond the end shows it.
        let r = verify(&good[..4], vec![held(&good[5])]);
        let first = r.first_problem.unwrap();
        assert_eq!(
            (first.seq, first.kind),
            (5, ProblemKind::Truncated),
            "{first:?}"
        );
        assert!(
            first.message.contains("entries 5 to 6 were deleted"),
            "{}",
            first.message
        );
    }
}
