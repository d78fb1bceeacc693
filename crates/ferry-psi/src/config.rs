//! What a PSI run is asked to do: who receives the result, which keys, which group (crypto
//! suite).

use crate::PsiError;
use ferry_context::{Context, PartyId, Role};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Who learns the intersection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Receivers {
    /// Every party learns which of its rows are in the intersection.
    #[default]
    All,
    /// Only this party does; the others learn the sizes documented in the crate docs.
    Party(PartyId),
}

impl Receivers {
    pub fn includes(&self, party: &PartyId) -> bool {
        match self {
            Receivers::All => true,
            Receivers::Party(p) => p == party,
        }
    }
}

impl std::fmt::Display for Receivers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Receivers::All => f.write_str("all parties"),
            Receivers::Party(p) => write!(f, "party '{p}' only"),
        }
    }
}

/// Where a party's blinding key comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyMode {
    /// A fresh key from the OS generator for every run (the default): runs are unlinkable.
    #[default]
    Fresh,
    /// A long-term secret kept in this file (created with mode 0600 if absent). The same
    /// party set then sees the same blinded elements run after run: see the crate docs for
    /// what that costs.
    Cached { file: PathBuf },
}

/// The prime-order group ECDH-PSI runs in: the crypto suite's group (see
/// [`GroupKind::of_suite`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    /// Ristretto255 (RFC 9496) over Curve25519, hashing with SHA-512: suite `default`.
    #[default]
    Ristretto255,
    /// SM2 (GB/T 32918.5) hashing with SM3 by RFC 9380: suite `gm` (国密).
    Sm2,
}

impl GroupKind {
    /// The group of a crypto suite: `default` → Ristretto255, `gm` → SM2 with SM3.
    pub fn of_suite(suite: ferry_crypto::Suite) -> Self {
        match suite {
            ferry_crypto::Suite::Default => GroupKind::Ristretto255,
            ferry_crypto::Suite::Gm => GroupKind::Sm2,
        }
    }

    pub fn suite(self) -> ferry_crypto::Suite {
        match self {
            GroupKind::Ristretto255 => ferry_crypto::Suite::Default,
            GroupKind::Sm2 => ferry_crypto::Suite::Gm,
        }
    }

    /// The group's name as the hello announces it.
    pub fn name(self) -> &'static str {
        self.suite().psi_group().name
    }
}

/// Which PSI protocol two parties run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PsiProtocol {
    /// ECDH-PSI over the configured group: two parties, or three and more.
    #[default]
    Ecdh,
    /// KKRT16: OT extension and cuckoo hashing, two parties only (see the crate docs).
    Kkrt,
}

impl PsiProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            PsiProtocol::Ecdh => "ecdh",
            PsiProtocol::Kkrt => "kkrt",
        }
    }
}

impl PsiProtocol {
    /// The protocol a job uses when it names none: KKRT for two data parties (an order of
    /// magnitude faster; see the crate docs), ECDH for three or more, and ECDH whenever a
    /// party wants a cached long-term key (KKRT has none).
    pub fn default_for(data_parties: usize, cached_key: bool) -> Self {
        if data_parties == 2 && !cached_key {
            PsiProtocol::Kkrt
        } else {
            PsiProtocol::Ecdh
        }
    }
}

impl PsiProtocol {
    /// [`PsiProtocol::default_for`] under a crypto suite: under `gm` always ECDH (over SM2),
    /// since KKRT's OT extension is built on AES-128 and Ristretto255.
    pub fn default_for_suite(
        suite: ferry_crypto::Suite,
        data_parties: usize,
        cached_key: bool,
    ) -> Self {
        match suite {
            ferry_crypto::Suite::Default => Self::default_for(data_parties, cached_key),
            ferry_crypto::Suite::Gm => PsiProtocol::Ecdh,
        }
    }
}

impl std::str::FromStr for PsiProtocol {
    type Err = PsiError;
    fn from_str(s: &str) -> Result<Self, PsiError> {
        match s {
            "ecdh" => Ok(PsiProtocol::Ecdh),
            "kkrt" => Ok(PsiProtocol::Kkrt),
            other => Err(PsiError::Config(format!(
                "unknown PSI protocol '{other}': use 'ecdh' or 'kkrt'"
            ))),
        }
    }
}

/// Parameters of a PSI run. Every party must use the same `receivers`, `group` and `leader`
/// and the same number of key columns; the handshake checks it. `chunk_size` may differ.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PsiConfig {
    /// ECDH (any number of parties) or KKRT (two parties). Both parties must agree.
    pub protocol: PsiProtocol,
    pub receivers: Receivers,
    pub keys: KeyMode,
    /// The ECDH group, i.e. the crypto suite ([`GroupKind::of_suite`]). KKRT runs only under
    /// the default suite (its OT extension uses AES-128 and Ristretto255).
    pub group: GroupKind,
    /// Elements per message (ECDH; KKRT's messages have fixed sizes: 16384 OT rows, 65536
    /// outputs). Larger chunks mean fewer messages and a longer wait before the peer can start
    /// on the first chunk.
    pub chunk_size: usize,
    /// With three or more parties: the party that compares the blinded sets. Default: the
    /// guest if the job has one, else the first party of the roster.
    pub leader: Option<PartyId>,
}

impl Default for PsiConfig {
    fn default() -> Self {
        PsiConfig {
            protocol: PsiProtocol::Ecdh,
            receivers: Receivers::All,
            keys: KeyMode::Fresh,
            group: GroupKind::Ristretto255,
            chunk_size: DEFAULT_CHUNK_SIZE,
            leader: None,
        }
    }
}

pub const DEFAULT_CHUNK_SIZE: usize = 8192;
/// Chunks above this are refused (from peers too): a message stays below 64 MiB.
pub const MAX_CHUNK_SIZE: usize = 1 << 20;

impl PsiConfig {
    /// Result to one party only.
    pub fn receiver(party: PartyId) -> Self {
        PsiConfig {
            receivers: Receivers::Party(party),
            ..PsiConfig::default()
        }
    }

    /// Checks this configuration against the job's roster and picks the leader.
    pub(crate) fn resolve(&self, ctx: &Context) -> Result<Resolved, PsiError> {
        if self.protocol == PsiProtocol::Kkrt && self.group != GroupKind::Ristretto255 {
            return Err(PsiError::Config(format!(
                "protocol 'kkrt' is not available under crypto suite '{}': its OT extension \
                 uses AES-128 and Ristretto255; use protocol 'ecdh' (over {}) for this suite",
                self.group.suite(),
                self.group.name()
            )));
        }
        if self.chunk_size == 0 || self.chunk_size > MAX_CHUNK_SIZE {
            return Err(PsiError::Config(format!(
                "chunk_size {} is outside 1..={MAX_CHUNK_SIZE}",
                self.chunk_size
            )));
        }
        if ctx.role() == Role::Arbiter {
            return Err(PsiError::Config(
                "the arbiter holds no data and takes no part in PSI; run it on the guest and hosts"
                    .into(),
            ));
        }
        // The arbiter, if the job has one, holds no identifiers.
        let parties: Vec<PartyId> = ctx
            .roster()
            .parties()
            .filter(|(_, r)| *r != Role::Arbiter)
            .map(|(p, _)| p.clone())
            .collect();
        if parties.len() < 2 {
            return Err(PsiError::Config(
                "PSI needs at least two data parties (guest or hosts) in the job".into(),
            ));
        }
        if let Receivers::Party(p) = &self.receivers
            && !parties.contains(p)
        {
            return Err(PsiError::Config(format!(
                "the result receiver '{p}' is not a data party of this job (parties: {})",
                join(&parties)
            )));
        }
        let leader = match &self.leader {
            Some(l) if !parties.contains(l) => {
                return Err(PsiError::Config(format!(
                    "the leader '{l}' is not a data party of this job (parties: {})",
                    join(&parties)
                )));
            }
            Some(l) => l.clone(),
            None => ctx.roster().guest().unwrap_or_else(|| parties[0].clone()),
        };
        Ok(Resolved {
            parties,
            leader,
            receivers: self.receivers.clone(),
            chunk_size: self.chunk_size,
        })
    }
}

fn join(parties: &[PartyId]) -> String {
    parties
        .iter()
        .map(PartyId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A configuration checked against the roster.
pub(crate) struct Resolved {
    /// The data parties (all but the arbiter), in roster order.
    pub parties: Vec<PartyId>,
    pub leader: PartyId,
    pub receivers: Receivers,
    pub chunk_size: usize,
}
