//! Who takes part in a job and in which role.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A party's name, unique within a federation (e.g. `bank`, `telco`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PartyId(String);

impl PartyId {
    /// Party names are short identifiers: ASCII letters, digits, `-` and `_`, 1 to 64 chars.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidPartyName> {
        let name = name.into();
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(PartyId(name))
        } else {
            Err(InvalidPartyName(name))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for PartyId {
    type Err = InvalidPartyName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PartyId::new(s)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid party name '{0}': use 1 to 64 ASCII letters, digits, '-' or '_'")]
pub struct InvalidPartyName(pub String);

/// The role a party plays in one job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Holds the labels and starts the job.
    Guest,
    /// Brings features.
    Host,
    /// Optional coordinator (key holder, aggregation server).
    Arbiter,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Guest => "guest",
            Role::Host => "host",
            Role::Arbiter => "arbiter",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "guest" => Ok(Role::Guest),
            "host" => Ok(Role::Host),
            "arbiter" => Ok(Role::Arbiter),
            other => Err(format!(
                "unknown role '{other}' (expected guest, host or arbiter)"
            )),
        }
    }
}

/// The parties of a job, in a fixed order (hosts keep the order they were listed in).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    parties: Vec<(PartyId, Role)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RosterError {
    #[error("party '{0}' is listed twice")]
    Duplicate(PartyId),
    #[error("a job has at most one {0}")]
    TooMany(Role),
}

impl Roster {
    pub fn new(parties: Vec<(PartyId, Role)>) -> Result<Self, RosterError> {
        for (i, (p, _)) in parties.iter().enumerate() {
            if parties[..i].iter().any(|(q, _)| q == p) {
                return Err(RosterError::Duplicate(p.clone()));
            }
        }
        for role in [Role::Guest, Role::Arbiter] {
            if parties.iter().filter(|(_, r)| *r == role).count() > 1 {
                return Err(RosterError::TooMany(role));
            }
        }
        Ok(Roster { parties })
    }

    /// Convenience for tests: `Roster::of(&[("bank", Role::Guest), ("telco", Role::Host)])`.
    pub fn of(parties: &[(&str, Role)]) -> Self {
        Roster::new(
            parties
                .iter()
                .map(|(n, r)| (PartyId::new(*n).expect("valid test party name"), *r))
                .collect(),
        )
        .expect("valid test roster")
    }

    pub fn parties(&self) -> impl Iterator<Item = (&PartyId, Role)> {
        self.parties.iter().map(|(p, r)| (p, *r))
    }

    pub fn role_of(&self, party: &PartyId) -> Option<Role> {
        self.parties
            .iter()
            .find(|(p, _)| p == party)
            .map(|(_, r)| *r)
    }

    pub fn with_role(&self, role: Role) -> Vec<PartyId> {
        self.parties
            .iter()
            .filter(|(_, r)| *r == role)
            .map(|(p, _)| p.clone())
            .collect()
    }

    pub fn guest(&self) -> Option<PartyId> {
        self.with_role(Role::Guest).into_iter().next()
    }

    pub fn arbiter(&self) -> Option<PartyId> {
        self.with_role(Role::Arbiter).into_iter().next()
    }

    pub fn hosts(&self) -> Vec<PartyId> {
        self.with_role(Role::Host)
    }

    pub fn len(&self) -> usize {
        self.parties.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parties.is_empty()
    }
}
