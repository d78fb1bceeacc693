//! Bad input from either side: a misbehaving querier against the real provider, a
//! misbehaving provider against the real querier, oversized messages, wrong versions, a table
//! that changes mid-session, and tables above their limits. Every case is a clear error
//! naming the peer and the field; nothing is half-written.

mod common;

use common::*;
use ferry_context::{Context, MemoryNetwork, PartyId, Role, Roster, SessionConfig};
use ferry_pir::wire::*;
use ferry_pir::{
    HintCache, MAX_COLUMNS, PirError, PirParams, ProviderTable, QueryLimits, ServeLimits, TableId,
    TableLayout, query_with, serve,
};
use std::sync::Mutex;
use std::time::Duration;

fn party(name: &str) -> PartyId {
    name.parse().unwrap()
}

fn config(max_message_bytes: usize) -> SessionConfig {
    SessionConfig {
        timeout: Duration::from_secs(20),
        max_message_bytes,
    }
}

const BIG: usize = 1 << 30;

/// Runs the querier and the provider in two threads with their own session configs; a party
/// that fails is marked failed so the other's receives stop at once.
fn duel<Q, P>(
    q_config: SessionConfig,
    p_config: SessionConfig,
    querier: impl FnOnce(Context) -> Result<Q, String> + Send,
    provider: impl FnOnce(Context) -> Result<P, String> + Send,
) -> (Result<Q, String>, Result<P, String>)
where
    Q: Send,
    P: Send,
{
    let net = MemoryNetwork::new();
    let roster = roster();
    let ctx = |name: &str, cfg: SessionConfig| {
        Context::builder(
            party(name),
            roster.clone(),
            "bad-input",
            net.endpoint(party(name)),
        )
        .config(cfg)
        .build()
        .unwrap()
    };
    let (qc, pc) = (ctx(QUERIER, q_config), ctx(PROVIDER, p_config));
    std::thread::scope(|s| {
        let q = s.spawn(|| {
            let r = querier(qc);
            if r.is_err() {
                net.mark_failed(&party(QUERIER));
            }
            r
        });
        let p = s.spawn(|| {
            let r = provider(pc);
            if r.is_err() {
                net.mark_failed(&party(PROVIDER));
            }
            r
        });
        (q.join().unwrap(), p.join().unwrap())
    })
}

fn small_table() -> ProviderTable {
    let rows: Vec<(Vec<u8>, Vec<u8>)> = (0..30)
        .map(|i| (format!("k{i}").into_bytes(), format!("v{i}").into_bytes()))
        .collect();
    build(&rows, &PirParams::with_value_len(8), 200)
}

fn telco() -> PartyId {
    party(PROVIDER)
}

fn bank() -> PartyId {
    party(QUERIER)
}

/// The real provider against a fake querier: the provider's typed error.
fn serve_against(
    table: &ProviderTable,
    limits: &ServeLimits,
    p_config: SessionConfig,
    fake: impl FnOnce(Context) -> Result<(), String> + Send,
) -> (PirError, Result<(), String>) {
    let err = Mutex::new(None);
    let (fake_result, _) = duel(config(BIG), p_config, fake, |ctx| {
        match serve(&ctx, table, limits) {
            Ok(r) => Ok(r),
            Err(e) => {
                let msg = e.to_string();
                *err.lock().unwrap() = Some(e);
                Err(msg)
            }
        }
    });
    let e = err.into_inner().unwrap().expect("the provider must fail");
    (e, fake_result)
}

/// The real querier against a fake provider: the querier's typed error, and its cache after.
fn query_against(
    ids: &[Vec<u8>],
    q_config: SessionConfig,
    limits: &QueryLimits,
    cache: Option<HintCache>,
    fake: impl FnOnce(Context) -> Result<(), String> + Send,
) -> (PirError, Option<HintCache>) {
    let err = Mutex::new(None);
    let cache = Mutex::new(cache);
    // The fake provider's own result does not matter here.
    let _ = duel(
        q_config,
        config(BIG),
        |ctx| {
            let mut c = cache.lock().unwrap();
            match query_with(&ctx, ids, &mut c, limits, &mut rng(201)) {
                Ok(o) => Ok(o),
                Err(e) => {
                    let msg = e.to_string();
                    *err.lock().unwrap() = Some(e);
                    Err(msg)
                }
            }
        },
        fake,
    );
    let e = err.into_inner().unwrap().expect("the querier must fail");
    (e, cache.into_inner().unwrap())
}

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// A fake querier's opening: hello for `ids` ids, then the setup.
fn open(ctx: &Context, ids: u64, cached: Option<TableId>) -> Result<(Context, TableInfo), String> {
    let pir = ctx.sub("pir");
    pir.send(
        &telco(),
        TAG_HELLO,
        &Hello {
            version: PROTOCOL_VERSION,
            ids,
            cached_table: cached,
        },
    )
    .map_err(s)?;
    match pir.recv::<Setup>(&telco(), TAG_SETUP).map_err(s)? {
        Setup::Ready { info, .. } => Ok((pir, info)),
        Setup::Refused { reason, .. } => Err(format!("refused: {reason}")),
    }
}

fn assert_protocol(e: &PirError, peer: &str, field: &str) {
    match e {
        PirError::Protocol {
            peer: p, field: f, ..
        } => {
            assert_eq!((p.as_str(), *f), (peer, field), "{e}");
            assert!(e.to_string().contains(peer) && e.to_string().contains(field));
        }
        other => panic!("expected a protocol error on {field}, got {other:?}"),
    }
}

// ----------------------------------------------------------------------------------------
// A misbehaving querier
// ----------------------------------------------------------------------------------------

#[test]
fn a_querier_speaking_another_version_is_refused() {
    let table = small_table();
    let (e, fake) = serve_against(&table, &ServeLimits::default(), config(BIG), |ctx| {
        let pir = ctx.sub("pir");
        pir.send(
            &telco(),
            TAG_HELLO,
            &Hello {
                version: 99,
                ids: 1,
                cached_table: None,
            },
        )
        .map_err(s)?;
        match pir.recv::<Setup>(&telco(), TAG_SETUP).map_err(s)? {
            Setup::Refused { reason, .. } => {
                assert!(reason.contains("99"), "{reason}");
                Ok(())
            }
            Setup::Ready { .. } => Err("not refused".into()),
        }
    });
    fake.unwrap();
    assert!(
        matches!(&e, PirError::Version { peer, field: "hello.version", theirs: 99, ours: 1 } if *peer == bank()),
        "{e:?}"
    );
}

#[test]
fn too_many_ids_are_refused_before_any_work() {
    let table = small_table();
    let limits = ServeLimits { max_ids: 5 };
    let (e, fake) = serve_against(&table, &limits, config(BIG), |ctx| {
        let r = open(&ctx, 6, None);
        match r {
            Err(reason) if reason.contains("limit of 5") => Ok(()),
            Err(other) => Err(other),
            Ok(_) => Err("not refused".into()),
        }
    });
    fake.unwrap();
    assert_protocol(&e, QUERIER, "hello.ids");
    // The real querier hears the refusal with the provider's reason.
    let ids: Vec<Vec<u8>> = (0..6).map(|i| vec![i]).collect();
    let err = session_with(
        &table,
        &ids,
        &Mutex::new(None),
        202,
        &limits,
        &QueryLimits::default(),
    )
    .err()
    .unwrap();
    assert!(
        err.contains("refused the PIR session") && err.contains("limit of 5"),
        "{err}"
    );
    // u64::MAX ids too.
    let (e, _) = serve_against(&table, &limits, config(BIG), |ctx| {
        open(&ctx, u64::MAX, None).map(|_| ())
    });
    assert_protocol(&e, QUERIER, "hello.ids");
}

#[test]
fn malformed_oprf_requests_are_errors_naming_the_field() {
    let table = small_table();
    let id = table.id();
    type Make = Box<dyn Fn(TableId) -> OprfRequest + Send + Sync>;
    let cases: Vec<(&str, Make)> = vec![
        (
            "short",
            Box::new(|t| OprfRequest {
                version: PROTOCOL_VERSION,
                table_id: t,
                elements: vec![0u8; 33].into(),
            }),
        ),
        (
            "not a point",
            Box::new(|t| OprfRequest {
                version: PROTOCOL_VERSION,
                table_id: t,
                elements: vec![0xff; 64].into(),
            }),
        ),
    ];
    for (what, make) in &cases {
        let (e, _) = serve_against(&table, &ServeLimits::default(), config(BIG), |ctx| {
            let (pir, info) = open(&ctx, 2, Some(id))?;
            pir.send(&telco(), TAG_OPRF, &make(info.table_id))
                .map_err(s)?;
            Ok(())
        });
        assert_protocol(&e, QUERIER, "oprf.elements");
        if *what == "not a point" {
            assert!(e.to_string().contains("element 0"), "{e}");
        }
    }
    // Another table version, another message version.
    let (e, _) = serve_against(&table, &ServeLimits::default(), config(BIG), |ctx| {
        let (pir, _) = open(&ctx, 1, Some(id))?;
        let request = OprfRequest {
            version: PROTOCOL_VERSION,
            table_id: TableId([7; 32]),
            elements: vec![0; 32].into(),
        };
        pir.send(&telco(), TAG_OPRF, &request).map_err(s)?;
        Ok(())
    });
    assert!(
        matches!(&e, PirError::TableChanged { field: "oprf.table_id", expected, .. } if *expected == id),
        "{e:?}"
    );
    let (e, _) = serve_against(&table, &ServeLimits::default(), config(BIG), |ctx| {
        let (pir, info) = open(&ctx, 1, Some(id))?;
        let request = OprfRequest {
            version: 2,
            table_id: info.table_id,
            elements: vec![0; 32].into(),
        };
        pir.send(&telco(), TAG_OPRF, &request).map_err(s)?;
        Ok(())
    });
    assert!(
        matches!(
            &e,
            PirError::Version {
                field: "oprf.version",
                theirs: 2,
                ..
            }
        ),
        "{e:?}"
    );
}

/// A fake querier that does the OPRF step properly (with valid points), then sends `query`.
fn bad_query(table: &ProviderTable, ids: u64, query: Queries) -> PirError {
    let id = table.id();
    let (e, _) = serve_against(table, &ServeLimits::default(), config(BIG), move |ctx| {
        let (pir, info) = open(&ctx, ids, Some(id))?;
        let valid = table.locate(b"any").hashed;
        let elements: Vec<u8> = (0..ids).flat_map(|_| valid).collect();
        pir.send(
            &telco(),
            TAG_OPRF,
            &OprfRequest {
                version: PROTOCOL_VERSION,
                table_id: info.table_id,
                elements: elements.into(),
            },
        )
        .map_err(s)?;
        let _: OprfReply = pir.recv(&telco(), TAG_OPRF_REPLY).map_err(s)?;
        pir.send(&telco(), TAG_QUERY, &query).map_err(s)?;
        Ok(())
    });
    e
}

#[test]
fn malformed_queries_are_errors_naming_the_field() {
    let table = small_table();
    let m = table.layout().buckets as usize;
    let q = |first: u64, count: u32, bytes: usize| Queries {
        version: PROTOCOL_VERSION,
        table_id: table.id(),
        first,
        count,
        vectors: vec![1u8; bytes].into(),
    };
    assert_protocol(
        &bad_query(&table, 2, q(0, 1, m * 4 - 1)),
        QUERIER,
        "query.vectors",
    );
    assert_protocol(
        &bad_query(&table, 2, q(0, 1, m * 4 + 4)),
        QUERIER,
        "query.vectors",
    );
    assert_protocol(&bad_query(&table, 2, q(0, 0, 0)), QUERIER, "query.count");
    assert_protocol(
        &bad_query(&table, 2, q(0, 3, 3 * m * 4)),
        QUERIER,
        "query.count",
    );
    assert_protocol(
        &bad_query(&table, 2, q(1, 1, m * 4)),
        QUERIER,
        "query.first",
    );
    let mut other = q(0, 1, m * 4);
    other.table_id = TableId([1; 32]);
    assert!(matches!(
        bad_query(&table, 2, other),
        PirError::TableChanged {
            field: "query.table_id",
            ..
        }
    ));
    // More vectors in one message than the protocol allows.
    let per = queries_per_message(table.layout().buckets);
    let ids = per as u64 + 1;
    assert_protocol(
        &bad_query(&table, ids, q(0, per as u32 + 1, (per + 1) * m * 4)),
        QUERIER,
        "query.count",
    );
}

#[test]
fn an_oversized_message_from_the_querier_is_refused_by_the_transport_limit() {
    let table = small_table();
    let id = table.id();
    let (e, _) = serve_against(&table, &ServeLimits::default(), config(2048), |ctx| {
        let (pir, info) = open(&ctx, 100, Some(id))?;
        pir.send(
            &telco(),
            TAG_OPRF,
            &OprfRequest {
                version: PROTOCOL_VERSION,
                table_id: info.table_id,
                elements: vec![0u8; 3200].into(),
            },
        )
        .map_err(s)?;
        Ok(())
    });
    assert!(
        matches!(&e, PirError::Federation(ferry_context::FederationError::MessageTooLarge { peer, limit: 2048, .. }) if *peer == bank()),
        "{e:?}"
    );
}

#[test]
fn serving_needs_exactly_two_parties() {
    let table = small_table();
    let three = Roster::of(&[
        ("bank", Role::Guest),
        ("telco", Role::Host),
        ("other", Role::Host),
    ]);
    let outcomes = ferry_context::LocalCluster::new(three).run(|ctx| {
        if ctx.me().as_str() == "telco" {
            serve(&ctx, &table, &ServeLimits::default()).map(|_| ())
        } else {
            Ok(())
        }
    });
    let err = outcomes
        .iter()
        .find(|o| o.party.as_str() == "telco")
        .unwrap()
        .result
        .as_ref()
        .unwrap_err();
    assert!(err.contains("exactly two parties"), "{err}");
}

// ----------------------------------------------------------------------------------------
// A misbehaving provider
// ----------------------------------------------------------------------------------------

/// A tiny consistent layout for fake providers: 1 bucket of 1 slot of 10 bytes.
fn tiny_info() -> TableInfo {
    TableInfo {
        table_id: TableId([9; 32]),
        layout: TableLayout {
            rows: 0,
            value_len: 0,
            buckets: 1,
            capacity: 1,
        },
        lwe: LweConstants::ours(),
        a_seed: [1; 32],
        bucket_salt: [2; 32],
    }
}

fn ready(info: TableInfo, hint_chunks: u32) -> Setup {
    Setup::Ready {
        version: PROTOCOL_VERSION,
        info,
        hint_chunks,
    }
}

/// A fake provider: reads the hello, sends `setup`, then runs `rest`.
fn fake_provider(
    setup: Setup,
    rest: impl FnOnce(&Context) -> Result<(), String> + Send,
) -> impl FnOnce(Context) -> Result<(), String> + Send {
    move |ctx| {
        let pir = ctx.sub("pir");
        let _: Hello = pir.recv(&bank(), TAG_HELLO).map_err(s)?;
        pir.send(&bank(), TAG_SETUP, &setup).map_err(s)?;
        rest(&pir)
    }
}

fn hint_chunk(info: &TableInfo, bytes: usize) -> HintChunk {
    HintChunk {
        version: PROTOCOL_VERSION,
        table_id: info.table_id,
        index: 0,
        bytes: vec![0u8; bytes].into(),
    }
}

fn one_id() -> Vec<Vec<u8>> {
    vec![b"who".to_vec()]
}

fn query_fails(setup: Setup, rest: impl FnOnce(&Context) -> Result<(), String> + Send) -> PirError {
    query_against(
        &one_id(),
        config(BIG),
        &QueryLimits::default(),
        None,
        fake_provider(setup, rest),
    )
    .0
}

#[test]
fn a_provider_speaking_another_version_or_refusing_is_an_error() {
    let e = query_fails(
        Setup::Ready {
            version: 3,
            info: tiny_info(),
            hint_chunks: 1,
        },
        |_| Ok(()),
    );
    assert!(
        matches!(&e, PirError::Version { peer, field: "setup.version", theirs: 3, .. } if *peer == telco()),
        "{e:?}"
    );
    let e = query_fails(
        Setup::Refused {
            version: PROTOCOL_VERSION,
            reason: "maintenance".into(),
        },
        |_| Ok(()),
    );
    assert!(
        matches!(&e, PirError::Refused { reason, .. } if reason == "maintenance"),
        "{e:?}"
    );
}

#[test]
fn weaker_lwe_constants_or_bad_layouts_are_refused() {
    let mut info = tiny_info();
    info.lwe.n = 512;
    assert_protocol(
        &query_fails(ready(info, 1), |_| Ok(())),
        PROVIDER,
        "setup.lwe",
    );
    let mut info = tiny_info();
    info.lwe.sigma_milli = 1000;
    assert_protocol(
        &query_fails(ready(info, 1), |_| Ok(())),
        PROVIDER,
        "setup.lwe",
    );

    let layouts = [
        (MAX_COLUMNS + 1, 1, 0, 0),
        (0, 1, 0, 0),
        (1, 0, 0, 0),
        (2, 3, 100, 0),       // 100 rows do not fit in 6 slots
        (1, 1 << 20, 0, 0),   // matrix taller than allowed
        (1, 1, 0, 1_000_000), // value too long
    ];
    for (buckets, capacity, rows, value_len) in layouts {
        let mut info = tiny_info();
        info.layout = TableLayout {
            rows,
            value_len,
            buckets,
            capacity,
        };
        assert_protocol(
            &query_fails(ready(info, 1), |_| Ok(())),
            PROVIDER,
            "setup.layout",
        );
    }
    // Within the constants but above this querier's limits.
    let mut info = tiny_info();
    info.layout.capacity = 1000; // hint of 1000 × 10 × 4 KiB = 41 MB
    let limits = QueryLimits {
        max_hint_bytes: 1 << 20,
        ..QueryLimits::default()
    };
    let (e, _) = query_against(
        &one_id(),
        config(BIG),
        &limits,
        None,
        fake_provider(ready(info, 5), |_| Ok(())),
    );
    assert_protocol(&e, PROVIDER, "setup.layout");
    let mut info = tiny_info();
    info.layout.buckets = 1000;
    let limits = QueryLimits {
        max_buckets: 999,
        ..QueryLimits::default()
    };
    let (e, _) = query_against(
        &one_id(),
        config(BIG),
        &limits,
        None,
        fake_provider(ready(info, 1), |_| Ok(())),
    );
    assert_protocol(&e, PROVIDER, "setup.layout");
}

#[test]
fn a_bad_hint_is_an_error_and_leaves_the_cache_untouched() {
    let info = tiny_info();
    let hint_len = info.layout.hint_bytes() as usize;
    // Wrong number of pieces.
    assert_protocol(
        &query_fails(ready(info.clone(), 2), |_| Ok(())),
        PROVIDER,
        "setup.hint_chunks",
    );
    // No hint and no cache.
    assert_protocol(
        &query_fails(ready(info.clone(), 0), |_| Ok(())),
        PROVIDER,
        "setup.hint_chunks",
    );
    // A piece of the wrong length.
    let i2 = info.clone();
    let (e, cache) = query_against(
        &one_id(),
        config(BIG),
        &QueryLimits::default(),
        None,
        fake_provider(ready(info.clone(), 1), move |pir| {
            pir.send(&bank(), TAG_HINT, &hint_chunk(&i2, hint_len - 4))
                .map_err(s)
        }),
    );
    assert_protocol(&e, PROVIDER, "hint.bytes");
    assert!(cache.is_none(), "nothing half-written");
    // A piece of another table.
    let mut other = info.clone();
    other.table_id = TableId([4; 32]);
    let e = query_fails(ready(info.clone(), 1), move |pir| {
        pir.send(&bank(), TAG_HINT, &hint_chunk(&other, hint_len))
            .map_err(s)
    });
    assert!(
        matches!(
            e,
            PirError::TableChanged {
                field: "hint.table_id",
                ..
            }
        ),
        "{e:?}"
    );
    // A piece above the querier's message limit.
    let i3 = info.clone();
    let (e, _) = query_against(
        &one_id(),
        config(16 << 10),
        &QueryLimits::default(),
        None,
        fake_provider(ready(info, 1), move |pir| {
            pir.send(&bank(), TAG_HINT, &hint_chunk(&i3, hint_len))
                .map_err(s)
        }),
    );
    assert!(
        matches!(&e, PirError::Federation(ferry_context::FederationError::MessageTooLarge { peer, .. }) if *peer == telco()),
        "{e:?}"
    );
}

/// A fake provider that behaves up to the answers: sends the tiny hint, echoes the blinded
/// elements (valid points), reads the queries, then sends `answer(queries)`.
fn fake_until_answers(
    answer: impl FnOnce(&Queries) -> Answers + Send,
    oprf_reply: Option<OprfReply>,
) -> impl FnOnce(Context) -> Result<(), String> + Send {
    let info = tiny_info();
    let hint_len = info.layout.hint_bytes() as usize;
    let i2 = info.clone();
    fake_provider(ready(info, 1), move |pir| {
        pir.send(&bank(), TAG_HINT, &hint_chunk(&i2, hint_len))
            .map_err(s)?;
        let request: OprfRequest = pir.recv(&bank(), TAG_OPRF).map_err(s)?;
        let reply = oprf_reply.unwrap_or(OprfReply {
            version: PROTOCOL_VERSION,
            table_id: i2.table_id,
            elements: request.elements,
        });
        pir.send(&bank(), TAG_OPRF_REPLY, &reply).map_err(s)?;
        let queries: Queries = pir.recv(&bank(), TAG_QUERY).map_err(s)?;
        pir.send(&bank(), TAG_ANSWER, &answer(&queries)).map_err(s)
    })
}

fn good_answer(q: &Queries) -> Answers {
    Answers {
        version: PROTOCOL_VERSION,
        table_id: q.table_id,
        first: q.first,
        count: q.count,
        vectors: vec![0u8; q.count as usize * 10 * 4].into(),
    }
}

fn querier_error(
    fake: impl FnOnce(Context) -> Result<(), String> + Send,
) -> (PirError, Option<HintCache>) {
    query_against(&one_id(), config(BIG), &QueryLimits::default(), None, fake)
}

#[test]
fn the_fake_provider_is_otherwise_well_formed() {
    // Control for the cases below: the same fake with a well-formed answer gives a result
    // (garbage decrypts to no matching tag: absent).
    let cache = Mutex::new(None);
    let (q, p) = duel(
        config(BIG),
        config(BIG),
        |ctx| {
            let mut c = cache.lock().unwrap();
            query_with(
                &ctx,
                &one_id(),
                &mut c,
                &QueryLimits::default(),
                &mut rng(203),
            )
            .map_err(s)
        },
        fake_until_answers(good_answer, None),
    );
    p.unwrap();
    assert_eq!(q.unwrap().values, vec![None]);
}

#[test]
fn a_table_that_changes_mid_session_is_a_clear_error() {
    let (e, cache) = querier_error(fake_until_answers(
        |q| Answers {
            table_id: TableId([5; 32]),
            ..good_answer(q)
        },
        None,
    ));
    match &e {
        PirError::TableChanged {
            peer,
            field,
            expected,
            got,
        } => {
            assert_eq!((peer, *field), (&telco(), "answer.table_id"));
            assert_eq!((*expected, *got), (TableId([9; 32]), TableId([5; 32])));
            let text = e.to_string();
            assert!(
                text.contains("0909090909090909") && text.contains("0505050505050505"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The hint itself was complete and valid: the cache holds it.
    assert_eq!(cache.map(|c| c.table_id()), Some(TableId([9; 32])));
    // The OPRF reply of another version of the table.
    let (e, _) = querier_error(fake_until_answers(
        good_answer,
        Some(OprfReply {
            version: PROTOCOL_VERSION,
            table_id: TableId([6; 32]),
            elements: vec![0; 32].into(),
        }),
    ));
    assert!(
        matches!(
            e,
            PirError::TableChanged {
                field: "oprf-reply.table_id",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn malformed_answers_are_errors_naming_the_field() {
    let (e, _) = querier_error(fake_until_answers(
        |q| Answers {
            vectors: vec![0u8; 39].into(),
            ..good_answer(q)
        },
        None,
    ));
    assert_protocol(&e, PROVIDER, "answer.vectors");
    let (e, _) = querier_error(fake_until_answers(
        |q| Answers {
            first: 1,
            ..good_answer(q)
        },
        None,
    ));
    assert_protocol(&e, PROVIDER, "answer.first");
    let (e, _) = querier_error(fake_until_answers(
        |q| Answers {
            version: 0,
            ..good_answer(q)
        },
        None,
    ));
    assert!(
        matches!(
            e,
            PirError::Version {
                field: "answer.version",
                ..
            }
        ),
        "{e:?}"
    );
    for elements in [vec![0u8; 31], vec![0xff; 32], vec![0u8; 64]] {
        let (e, _) = querier_error(fake_until_answers(
            good_answer,
            Some(OprfReply {
                version: PROTOCOL_VERSION,
                table_id: TableId([9; 32]),
                elements: elements.into(),
            }),
        ));
        assert_protocol(&e, PROVIDER, "oprf-reply.elements");
    }
}

// ----------------------------------------------------------------------------------------
// Tables above their limits, bad rows, damaged files
// ----------------------------------------------------------------------------------------

#[test]
fn a_table_above_its_row_limit_is_refused_without_reading_everything() {
    let params = PirParams {
        max_rows: 10,
        ..PirParams::default()
    };
    // An endless iterator: the build stops at the 11th row.
    let rows = (0u64..).map(|i| (i.to_le_bytes().to_vec(), vec![1u8]));
    let e = ProviderTable::build(rows, &params, &mut rng(204)).unwrap_err();
    assert!(matches!(e, PirError::TooManyRows { limit: 10 }), "{e:?}");
    assert!(e.to_string().contains("nothing was built"));
    let ten = (0u64..10).map(|i| (i.to_le_bytes().to_vec(), vec![1u8]));
    assert_eq!(
        ProviderTable::build(ten, &params, &mut rng(205))
            .unwrap()
            .len(),
        10
    );

    let params = PirParams {
        max_matrix_bytes: 10_000,
        ..PirParams::default()
    };
    let rows = (0u64..200).map(|i| (i.to_le_bytes().to_vec(), vec![1u8]));
    let e = ProviderTable::build(rows, &params, &mut rng(206)).unwrap_err();
    assert!(
        matches!(
            e,
            PirError::TableTooLarge {
                what: "database matrix",
                limit: 10_000,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn bad_rows_are_named() {
    let params = PirParams::with_value_len(4);
    let rows = vec![
        (b"a".to_vec(), b"1234".to_vec()),
        (b"b".to_vec(), b"12345".to_vec()),
    ];
    let e = ProviderTable::build(rows, &params, &mut rng(207)).unwrap_err();
    assert!(
        matches!(&e, PirError::Row { row: 1, reason } if reason.contains("longer")),
        "{e:?}"
    );
    let rows = vec![
        (b"a".to_vec(), b"1".to_vec()),
        (b"b".to_vec(), b"2".to_vec()),
        (b"a".to_vec(), b"3".to_vec()),
    ];
    let e = ProviderTable::build(rows, &params, &mut rng(208)).unwrap_err();
    assert!(
        matches!(&e, PirError::Row { row: 2, reason } if reason.contains("duplicate key") && reason.contains("row 0")),
        "{e:?}"
    );
    let bad = PirParams {
        bucket_load: 0,
        ..PirParams::default()
    };
    let e =
        ProviderTable::build(Vec::<(Vec<u8>, Vec<u8>)>::new(), &bad, &mut rng(209)).unwrap_err();
    assert!(
        matches!(e, PirError::Params(ref m) if m.contains("bucket_load")),
        "{e:?}"
    );
}

#[test]
fn damaged_or_foreign_stored_tables_are_refused() {
    let table = small_table();
    let params = PirParams::with_value_len(8);
    let bytes = table.to_bytes();
    let stored = |e: PirError, what: &str| match e {
        PirError::Stored(m) => assert!(m.contains(what), "{m}"),
        other => panic!("{other:?}"),
    };
    stored(
        ProviderTable::from_bytes(&bytes[..100], &params).unwrap_err(),
        "shorter",
    );
    stored(
        ProviderTable::from_bytes(&bytes[..bytes.len() - 1], &params).unwrap_err(),
        "bytes, the layout needs",
    );
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 1;
    stored(
        ProviderTable::from_bytes(&flipped, &params).unwrap_err(),
        "checksum",
    );
    let mut magic = bytes.clone();
    magic[0] = b'X';
    stored(
        ProviderTable::from_bytes(&magic, &params).unwrap_err(),
        "magic",
    );
    let mut version = bytes.clone();
    version[8] = 2;
    stored(
        ProviderTable::from_bytes(&version, &params).unwrap_err(),
        "format version 2",
    );
    stored(
        ProviderTable::from_bytes(&bytes, &PirParams::with_value_len(9)).unwrap_err(),
        "value length",
    );
    let small = PirParams {
        max_rows: 29,
        ..params.clone()
    };
    assert!(matches!(
        ProviderTable::from_bytes(&bytes, &small).unwrap_err(),
        PirError::TooManyRows { limit: 29 }
    ));
    // Contents changed and the checksum recomputed: the table id no longer matches.
    let mut forged = bytes[..bytes.len() - 32].to_vec();
    let header = 8 + 4 + 8 + 4 + 4 + 4 + 32 * 4;
    forged[header] ^= 1;
    let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&forged).into();
    forged.extend_from_slice(&digest);
    stored(
        ProviderTable::from_bytes(&forged, &params).unwrap_err(),
        "table id",
    );
    // The intact bytes still load.
    assert_eq!(
        ProviderTable::from_bytes(&bytes, &params).unwrap().id(),
        table.id()
    );
}
