//! Shared helpers: two parties in-process (bank queries, telco serves) with seeded randomness.

#![allow(dead_code)]

use ferry_context::{LocalCluster, PartyOutcome, Role, Roster, TranscriptEntry};
use ferry_pir::{
    HintCache, PirParams, ProviderTable, QueryLimits, QueryOutcome, ServeLimits, ServeReport,
    query_with, serve,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::sync::{Arc, Mutex};

pub const QUERIER: &str = "bank";
pub const PROVIDER: &str = "telco";

pub fn roster() -> Roster {
    Roster::of(&[(QUERIER, Role::Guest), (PROVIDER, Role::Host)])
}

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub fn build(rows: &[(Vec<u8>, Vec<u8>)], params: &PirParams, seed: u64) -> ProviderTable {
    ProviderTable::build(rows.iter().cloned(), params, &mut rng(seed)).expect("table builds")
}

/// One party's result in a session.
pub enum Side {
    Served(ServeReport),
    Queried(QueryOutcome),
}

/// What a session produced, with both parties' transcripts.
pub struct Session {
    pub served: ServeReport,
    pub queried: QueryOutcome,
    pub provider: PartyOutcome<Side>,
    pub querier: PartyOutcome<Side>,
}

impl Session {
    /// Everything the provider received.
    pub fn provider_received(&self) -> Vec<TranscriptEntry> {
        self.provider
            .transcript
            .as_ref()
            .expect("transcript")
            .received()
    }
    pub fn querier_received(&self) -> Vec<TranscriptEntry> {
        self.querier
            .transcript
            .as_ref()
            .expect("transcript")
            .received()
    }
}

/// Runs one session: the querier asks `ids` with `cache` and a ChaCha20 generator seeded
/// with `seed`; the provider serves `table` under `limits`.
pub fn session(
    table: &ProviderTable,
    ids: &[Vec<u8>],
    cache: &Mutex<Option<HintCache>>,
    seed: u64,
) -> Session {
    session_with(
        table,
        ids,
        cache,
        seed,
        &ServeLimits::default(),
        &QueryLimits::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

pub fn session_with(
    table: &ProviderTable,
    ids: &[Vec<u8>],
    cache: &Mutex<Option<HintCache>>,
    seed: u64,
    limits: &ServeLimits,
    query_limits: &QueryLimits,
) -> Result<Session, String> {
    let outcomes = LocalCluster::new(roster()).capture_transcripts().run(
        |ctx| -> Result<Side, ferry_pir::PirError> {
            if ctx.me().as_str() == PROVIDER {
                serve(&ctx, table, limits).map(Side::Served)
            } else {
                let mut cache = cache.lock().unwrap();
                query_with(&ctx, ids, &mut cache, query_limits, &mut rng(seed)).map(Side::Queried)
            }
        },
    );
    let mut querier = None;
    let mut provider = None;
    let mut errors = Vec::new();
    for o in outcomes {
        if let Err(e) = &o.result {
            errors.push(format!("{}: {e}", o.party));
        }
        if o.party.as_str() == PROVIDER {
            provider = Some(o);
        } else {
            querier = Some(o);
        }
    }
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    let (provider, querier) = (provider.unwrap(), querier.unwrap());
    let served = match &provider.result {
        Ok(Side::Served(r)) => r.clone(),
        _ => unreachable!(),
    };
    let queried = match &querier.result {
        Ok(Side::Queried(q)) => q.clone(),
        _ => unreachable!(),
    };
    Ok(Session {
        served,
        queried,
        provider,
        querier,
    })
}

/// A querier's values with a fresh cache.
pub fn lookup(table: &ProviderTable, ids: &[Vec<u8>], seed: u64) -> Vec<Option<Vec<u8>>> {
    session(table, ids, &Mutex::new(None), seed).queried.values
}

pub fn shared<T>(t: T) -> Arc<Mutex<T>> {
    Arc::new(Mutex::new(t))
}
