//! The two parties: [`serve`] (provider) and [`query`] / [`query_with`] (querier).

use crate::matrix::{self, Gaussian, mul_vecs};
use crate::oprf;
use crate::params::{CENTRE, DELTA, ELEMENT_BYTES, LEN_BYTES, LWE_N, PLAINTEXT_BITS, TAG_BYTES};
use crate::table::{le_to_u32s, u32s_to_le};
use crate::wire::*;
use crate::{PirError, ProviderTable, TableId};
use ferry_context::{Blob, Context, PartyId};
use rand::{CryptoRng, Rng};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::VecDeque;
use std::time::Instant;

/// What a provider accepts in one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeLimits {
    /// Most ids one session may ask. Every id costs the querier one OPRF evaluation, which is
    /// what lets it test an id against the table: this is the rate limit on guessing.
    pub max_ids: u64,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits { max_ids: 100_000 }
    }
}

/// What a provider's session did (counts only: the provider learns nothing else).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ServeReport {
    pub table_id: Option<TableId>,
    /// Ids the querier asked (= OPRF evaluations = PIR answers).
    pub ids: u64,
    pub hint_sent: bool,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Time in the OPRF evaluations.
    pub oprf_seconds: f64,
    /// Time computing answers (the matrix-vector products).
    pub answer_seconds: f64,
    pub seconds: f64,
}

/// What a querier's session did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct QueryReport {
    pub table_id: Option<TableId>,
    /// Rows of the provider's table (the provider reveals it).
    pub table_rows: u64,
    pub ids: u64,
    /// Ids with a value.
    pub found: u64,
    /// Whether this session downloaded the hint (else the cached one was used).
    pub hint_downloaded: bool,
    pub hint_bytes: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Generating A after a hint download.
    pub setup_seconds: f64,
    pub seconds: f64,
}

/// What a querier receives for its ids: one entry per id, in order.
#[derive(Clone, Debug)]
pub struct QueryOutcome {
    pub values: Vec<Option<Vec<u8>>>,
    pub report: QueryReport,
}

/// Limits a querier applies to what a provider sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryLimits {
    /// Largest hint the querier downloads (`matrix_rows × 4 KiB`).
    pub max_hint_bytes: u64,
    /// Most buckets (database columns) the querier accepts: it generates and holds the
    /// public matrix A, `buckets × 4 KiB`, and uploads `buckets × 4` bytes per id.
    pub max_buckets: u32,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_hint_bytes: 1 << 30,
            max_buckets: 1 << 18,
        }
    }
}

/// The querier's copy of one table version's public data: the hint (the one-time download)
/// and the matrix A generated from its seed. Keep it across sessions with
/// [`query_with`]: a later session against the same table version downloads no hint.
pub struct HintCache {
    info: TableInfo,
    /// `matrix_rows × n`, row-major.
    hint: Vec<u32>,
    /// `buckets × n`, row-major.
    a: Vec<u32>,
}

impl HintCache {
    pub fn table_id(&self) -> TableId {
        self.info.table_id
    }

    pub fn info(&self) -> &TableInfo {
        &self.info
    }

    /// Bytes of the hint as downloaded.
    pub fn hint_bytes(&self) -> u64 {
        self.hint.len() as u64 * 4
    }
}

impl std::fmt::Debug for HintCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HintCache")
            .field("table_id", &self.info.table_id)
            .field("layout", &self.info.layout)
            .finish_non_exhaustive()
    }
}

/// The other party of a two-party roster.
fn only_peer(ctx: &Context) -> Result<PartyId, PirError> {
    let others = ctx.others();
    match others.as_slice() {
        [peer] => Ok(peer.clone()),
        _ => Err(PirError::Roster(format!(
            "this session has {} other parties",
            others.len()
        ))),
    }
}

fn check_version(peer: &PartyId, field: &'static str, theirs: u32) -> Result<(), PirError> {
    if theirs == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(PirError::Version {
            peer: peer.clone(),
            field,
            theirs,
            ours: PROTOCOL_VERSION,
        })
    }
}

fn check_table(
    peer: &PartyId,
    field: &'static str,
    expected: TableId,
    got: TableId,
) -> Result<(), PirError> {
    if expected == got {
        Ok(())
    } else {
        Err(PirError::TableChanged {
            peer: peer.clone(),
            field,
            expected,
            got,
        })
    }
}

/// The provider's side of one session: answers the other party's ids from `table`.
///
/// Sequence: hello → setup (+ hint pieces) → OPRF request/reply → query/answer messages until
/// every announced id is answered. The provider sees only counts and pseudo-random bytes; it
/// refuses (with a `Refused` setup, then an error) a different message version or more ids
/// than `limits.max_ids`, and stops with an error on any malformed message.
pub fn serve(
    ctx: &Context,
    table: &ProviderTable,
    limits: &ServeLimits,
) -> Result<ServeReport, PirError> {
    let peer = only_peer(ctx)?;
    let ctx = ctx.sub("pir");
    let start = Instant::now();
    let before = ctx.counters();
    let mut report = ServeReport {
        table_id: Some(table.id),
        ..ServeReport::default()
    };

    let hello: Hello = ctx.recv(&peer, TAG_HELLO)?;
    let refuse = |reason: String| -> Result<(), PirError> {
        ctx.send(
            &peer,
            TAG_SETUP,
            &Setup::Refused {
                version: PROTOCOL_VERSION,
                reason,
            },
        )?;
        Ok(())
    };
    if hello.version != PROTOCOL_VERSION {
        refuse(format!(
            "PIR message version {} is not supported (this provider speaks {PROTOCOL_VERSION})",
            hello.version
        ))?;
        return Err(PirError::Version {
            peer,
            field: "hello.version",
            theirs: hello.version,
            ours: PROTOCOL_VERSION,
        });
    }
    if hello.ids > limits.max_ids {
        refuse(format!(
            "{} ids in one session, above this provider's limit of {}",
            hello.ids, limits.max_ids
        ))?;
        return Err(PirError::protocol(
            &peer,
            "hello.ids",
            format!("{} ids, above the limit of {}", hello.ids, limits.max_ids),
        ));
    }
    let ids = hello.ids as usize;
    let layout = table.layout;
    let send_hint = ids > 0 && hello.cached_table != Some(table.id);
    let hint = if send_hint {
        table.hint_le_bytes()
    } else {
        Vec::new()
    };
    let chunks: Vec<&[u8]> = hint.chunks(HINT_CHUNK_BYTES).collect();
    ctx.send(
        &peer,
        TAG_SETUP,
        &Setup::Ready {
            version: PROTOCOL_VERSION,
            info: TableInfo {
                table_id: table.id,
                layout,
                lwe: LweConstants::ours(),
                a_seed: table.a_seed,
                bucket_salt: table.salt,
            },
            hint_chunks: chunks.len() as u32,
        },
    )?;
    for (index, piece) in chunks.iter().enumerate() {
        ctx.send(
            &peer,
            TAG_HINT,
            &HintChunk {
                version: PROTOCOL_VERSION,
                table_id: table.id,
                index: index as u32,
                bytes: Blob(piece.to_vec()),
            },
        )?;
    }
    drop(hint);
    report.hint_sent = send_hint;
    report.ids = hello.ids;
    if ids == 0 {
        return Ok(finish(report, &ctx, &before, start));
    }

    // OPRF.
    let request: OprfRequest = ctx.recv(&peer, TAG_OPRF)?;
    check_version(&peer, "oprf.version", request.version)?;
    check_table(&peer, "oprf.table_id", table.id, request.table_id)?;
    if request.elements.len() != ids * ELEMENT_BYTES {
        return Err(PirError::protocol(
            &peer,
            "oprf.elements",
            format!(
                "{} bytes, expected {ids} elements of {ELEMENT_BYTES} bytes",
                request.elements.len()
            ),
        ));
    }
    let t = Instant::now();
    let evaluated: Result<Vec<[u8; ELEMENT_BYTES]>, usize> = request
        .elements
        .par_chunks(ELEMENT_BYTES)
        .enumerate()
        .map(|(i, e)| table.key.evaluate_blinded(e).ok_or(i))
        .collect();
    let evaluated = evaluated.map_err(|i| {
        PirError::protocol(
            &peer,
            "oprf.elements",
            format!("element {i} is not a valid ristretto255 encoding"),
        )
    })?;
    report.oprf_seconds = t.elapsed().as_secs_f64();
    ctx.send(
        &peer,
        TAG_OPRF_REPLY,
        &OprfReply {
            version: PROTOCOL_VERSION,
            table_id: table.id,
            elements: Blob(evaluated.concat()),
        },
    )?;

    // PIR answers.
    let m = layout.matrix_columns();
    let per_message = queries_per_message(layout.buckets);
    let mut answered = 0usize;
    while answered < ids {
        let q: Queries = ctx.recv(&peer, TAG_QUERY)?;
        check_version(&peer, "query.version", q.version)?;
        check_table(&peer, "query.table_id", table.id, q.table_id)?;
        let count = q.count as usize;
        if q.first != answered as u64 {
            return Err(PirError::protocol(
                &peer,
                "query.first",
                format!("queries start at {}, expected {answered}", q.first),
            ));
        }
        if count == 0 || count > per_message || count > ids - answered {
            return Err(PirError::protocol(
                &peer,
                "query.count",
                format!(
                    "{count} queries, expected 1..={}",
                    per_message.min(ids - answered)
                ),
            ));
        }
        if q.vectors.len() != count * m * 4 {
            return Err(PirError::protocol(
                &peer,
                "query.vectors",
                format!(
                    "{} bytes, expected {count} vectors of {m} elements of 4 bytes",
                    q.vectors.len()
                ),
            ));
        }
        let t = Instant::now();
        let answers = table.answer(&le_to_u32s(&q.vectors))?;
        report.answer_seconds += t.elapsed().as_secs_f64();
        ctx.send(
            &peer,
            TAG_ANSWER,
            &Answers {
                version: PROTOCOL_VERSION,
                table_id: table.id,
                first: q.first,
                count: q.count,
                vectors: Blob(u32s_to_le(&answers)),
            },
        )?;
        answered += count;
    }
    Ok(finish(report, &ctx, &before, start))
}

fn finish(
    mut report: ServeReport,
    ctx: &Context,
    before: &ferry_context::CountersSnapshot,
    start: Instant,
) -> ServeReport {
    let after = ctx.counters();
    report.bytes_sent = after.bytes_sent() - before.bytes_sent();
    report.bytes_received = after.bytes_received() - before.bytes_received();
    report.seconds = start.elapsed().as_secs_f64();
    report
}

/// The querier's side of one session, with fresh randomness from the OS and no hint cache:
/// the value of each id in the provider's table, `None` for an absent id.
pub fn query<K: AsRef<[u8]> + Sync>(
    ctx: &Context,
    ids: &[K],
) -> Result<Vec<Option<Vec<u8>>>, PirError> {
    let mut cache = None;
    let mut rng = rand::rng();
    Ok(query_with(ctx, ids, &mut cache, &QueryLimits::default(), &mut rng)?.values)
}

/// The querier's side of one session.
///
/// `cache` holds the hint of a table version from an earlier session (or `None`); it is
/// replaced once a new hint has been downloaded and checked, and kept when the provider
/// still serves the same version. Duplicate ids are queried as separate ids (the provider
/// sees only the count). On error nothing is returned.
pub fn query_with<K: AsRef<[u8]> + Sync, R: CryptoRng + ?Sized>(
    ctx: &Context,
    ids: &[K],
    cache: &mut Option<HintCache>,
    limits: &QueryLimits,
    rng: &mut R,
) -> Result<QueryOutcome, PirError> {
    let peer = only_peer(ctx)?;
    let ctx = ctx.sub("pir");
    let start = Instant::now();
    let before = ctx.counters();
    let mut report = QueryReport {
        ids: ids.len() as u64,
        ..QueryReport::default()
    };
    ctx.send(
        &peer,
        TAG_HELLO,
        &Hello {
            version: PROTOCOL_VERSION,
            ids: ids.len() as u64,
            cached_table: cache.as_ref().map(|c| c.info.table_id),
        },
    )?;
    let (info, hint_chunks) = match ctx.recv::<Setup>(&peer, TAG_SETUP)? {
        Setup::Refused { reason, .. } => return Err(PirError::Refused { peer, reason }),
        Setup::Ready {
            version,
            info,
            hint_chunks,
        } => {
            check_version(&peer, "setup.version", version)?;
            (info, hint_chunks)
        }
    };
    if info.lwe != LweConstants::ours() {
        return Err(PirError::protocol(
            &peer,
            "setup.lwe",
            format!(
                "LWE constants {:?}, this querier uses {:?}",
                info.lwe,
                LweConstants::ours()
            ),
        ));
    }
    info.layout
        .check()
        .map_err(|reason| PirError::protocol(&peer, "setup.layout", reason))?;
    let layout = info.layout;
    if layout.buckets > limits.max_buckets {
        return Err(PirError::protocol(
            &peer,
            "setup.layout",
            format!(
                "{} buckets, above this querier's limit of {}",
                layout.buckets, limits.max_buckets
            ),
        ));
    }
    report.table_id = Some(info.table_id);
    report.table_rows = layout.rows;
    if ids.is_empty() {
        if hint_chunks != 0 {
            return Err(PirError::protocol(
                &peer,
                "setup.hint_chunks",
                "a hint for a session without ids",
            ));
        }
        return Ok(QueryOutcome {
            values: Vec::new(),
            report: finish_query(report, &ctx, &before, start),
        });
    }

    if hint_chunks > 0 {
        let hint_bytes = layout.hint_bytes();
        if hint_bytes > limits.max_hint_bytes {
            return Err(PirError::protocol(
                &peer,
                "setup.layout",
                format!(
                    "the hint would be {hint_bytes} bytes, above this querier's limit of {}",
                    limits.max_hint_bytes
                ),
            ));
        }
        let expected_chunks = hint_bytes.div_ceil(HINT_CHUNK_BYTES as u64);
        if hint_chunks as u64 != expected_chunks {
            return Err(PirError::protocol(
                &peer,
                "setup.hint_chunks",
                format!("{hint_chunks} pieces, a hint of {hint_bytes} bytes has {expected_chunks}"),
            ));
        }
        let mut hint = Vec::with_capacity(hint_bytes as usize / 4);
        for index in 0..hint_chunks {
            let chunk: HintChunk = ctx.recv(&peer, TAG_HINT)?;
            check_version(&peer, "hint.version", chunk.version)?;
            check_table(&peer, "hint.table_id", info.table_id, chunk.table_id)?;
            let expected_len =
                (hint_bytes - index as u64 * HINT_CHUNK_BYTES as u64).min(HINT_CHUNK_BYTES as u64);
            if chunk.index != index || chunk.bytes.len() as u64 != expected_len {
                return Err(PirError::protocol(
                    &peer,
                    "hint.bytes",
                    format!(
                        "piece {} of {} bytes, expected piece {index} of {expected_len} bytes",
                        chunk.index,
                        chunk.bytes.len()
                    ),
                ));
            }
            hint.extend(le_to_u32s(&chunk.bytes));
        }
        let t = Instant::now();
        let a = matrix::lwe_matrix(&info.a_seed, layout.matrix_columns());
        report.setup_seconds = t.elapsed().as_secs_f64();
        report.hint_downloaded = true;
        *cache = Some(HintCache {
            info: info.clone(),
            hint,
            a,
        });
    }
    let Some(state) = cache.as_ref() else {
        return Err(PirError::protocol(
            &peer,
            "setup.hint_chunks",
            "no hint was sent and this querier holds none",
        ));
    };
    if state.info != info {
        return Err(PirError::protocol(
            &peer,
            "setup.hint_chunks",
            format!(
                "no hint was sent, but the cached hint is for table {} and this session \
                 serves table {} (or the same id with other parameters)",
                state.info.table_id, info.table_id
            ),
        ));
    }
    report.hint_bytes = state.hint_bytes();

    // OPRF.
    let (blinded, blinds) = oprf::blind_many(ids, rng);
    ctx.send(
        &peer,
        TAG_OPRF,
        &OprfRequest {
            version: PROTOCOL_VERSION,
            table_id: info.table_id,
            elements: Blob(blinded),
        },
    )?;
    let reply: OprfReply = ctx.recv(&peer, TAG_OPRF_REPLY)?;
    check_version(&peer, "oprf-reply.version", reply.version)?;
    check_table(&peer, "oprf-reply.table_id", info.table_id, reply.table_id)?;
    if reply.elements.len() != ids.len() * ELEMENT_BYTES {
        return Err(PirError::protocol(
            &peer,
            "oprf-reply.elements",
            format!(
                "{} bytes, expected {} elements of {ELEMENT_BYTES} bytes",
                reply.elements.len(),
                ids.len()
            ),
        ));
    }
    let outputs = oprf::unblind_many(ids, &blinds, &reply.elements).map_err(|i| {
        PirError::protocol(
            &peer,
            "oprf-reply.elements",
            format!("element {i} is not a valid ristretto255 encoding"),
        )
    })?;
    let targets: Vec<(u32, [u8; TAG_BYTES])> = outputs
        .iter()
        .map(|f| {
            (
                oprf::bucket_of(f, &info.bucket_salt, layout.buckets),
                oprf::tag_of(f),
            )
        })
        .collect();

    // PIR: queries in messages of `per_message`, at most QUERY_WINDOW messages ahead.
    let per_message = queries_per_message(layout.buckets);
    let gaussian = Gaussian::new();
    let mut pending: VecDeque<(u64, Vec<Vec<u32>>)> = VecDeque::new();
    let mut columns: Vec<Vec<u8>> = Vec::with_capacity(ids.len());
    let batches: Vec<std::ops::Range<usize>> = (0..ids.len())
        .step_by(per_message)
        .map(|s| s..(s + per_message).min(ids.len()))
        .collect();
    let mut next_batch = 0;
    while columns.len() < ids.len() {
        while next_batch < batches.len() && pending.len() < QUERY_WINDOW {
            let range = batches[next_batch].clone();
            let (vectors, secrets) = make_queries(state, &gaussian, &targets[range.clone()], rng);
            ctx.send(
                &peer,
                TAG_QUERY,
                &Queries {
                    version: PROTOCOL_VERSION,
                    table_id: info.table_id,
                    first: range.start as u64,
                    count: range.len() as u32,
                    vectors: Blob(u32s_to_le(&vectors)),
                },
            )?;
            pending.push_back((range.start as u64, secrets));
            next_batch += 1;
        }
        let Some((first, secrets)) = pending.pop_front() else {
            break;
        };
        let answers: Answers = ctx.recv(&peer, TAG_ANSWER)?;
        check_version(&peer, "answer.version", answers.version)?;
        check_table(&peer, "answer.table_id", info.table_id, answers.table_id)?;
        let rows = layout.matrix_rows();
        if answers.first != first || answers.count as usize != secrets.len() {
            return Err(PirError::protocol(
                &peer,
                "answer.first",
                format!(
                    "answers {}..+{}, expected {first}..+{}",
                    answers.first,
                    answers.count,
                    secrets.len()
                ),
            ));
        }
        if answers.vectors.len() != secrets.len() * rows * 4 {
            return Err(PirError::protocol(
                &peer,
                "answer.vectors",
                format!(
                    "{} bytes, expected {} vectors of {rows} elements of 4 bytes",
                    answers.vectors.len(),
                    secrets.len()
                ),
            ));
        }
        columns.extend(decrypt(state, &le_to_u32s(&answers.vectors), &secrets));
    }

    let mut values = Vec::with_capacity(ids.len());
    for (i, (column, (_, tag))) in columns.iter().zip(&targets).enumerate() {
        values.push(find_value(
            &peer,
            i,
            column,
            tag,
            &outputs[i],
            layout.value_len as usize,
        )?);
    }
    report.found = values.iter().filter(|v| v.is_some()).count() as u64;
    Ok(QueryOutcome {
        values,
        report: finish_query(report, &ctx, &before, start),
    })
}

fn finish_query(
    mut report: QueryReport,
    ctx: &Context,
    before: &ferry_context::CountersSnapshot,
    start: Instant,
) -> QueryReport {
    let after = ctx.counters();
    report.bytes_sent = after.bytes_sent() - before.bytes_sent();
    report.bytes_received = after.bytes_received() - before.bytes_received();
    report.seconds = start.elapsed().as_secs_f64();
    report
}

/// Query vectors `A·s + e + Δ·u_bucket` (concatenated) and their secrets `s`, one fresh
/// secret and error per query.
fn make_queries<R: CryptoRng + ?Sized>(
    state: &HintCache,
    gaussian: &Gaussian,
    targets: &[(u32, [u8; TAG_BYTES])],
    rng: &mut R,
) -> (Vec<u32>, Vec<Vec<u32>>) {
    let m = state.info.layout.matrix_columns();
    let mut forks: Vec<_> = targets.iter().map(|_| matrix::fork(rng)).collect();
    let secrets: Vec<Vec<u32>> = forks
        .iter_mut()
        .map(|r| (0..LWE_N).map(|_| r.next_u32()).collect())
        .collect();
    let refs: Vec<&[u32]> = secrets.iter().map(|s| s.as_slice()).collect();
    let a_s = mul_vecs(&state.a, LWE_N, &refs);
    let vectors: Vec<Vec<u32>> = a_s
        .into_par_iter()
        .zip(forks.par_iter_mut())
        .zip(targets.par_iter())
        .map(|((mut q, r), (bucket, _))| {
            let e = gaussian.vector(r, m);
            for (x, e) in q.iter_mut().zip(e) {
                *x = x.wrapping_add(e);
            }
            q[*bucket as usize] = q[*bucket as usize].wrapping_add(DELTA);
            q
        })
        .collect();
    (vectors.concat(), secrets)
}

/// The retrieved columns: `round((answer − hint·s) / Δ) + 128` as bytes.
fn decrypt(state: &HintCache, answers: &[u32], secrets: &[Vec<u32>]) -> Vec<Vec<u8>> {
    let rows = state.info.layout.matrix_rows();
    let refs: Vec<&[u32]> = secrets.iter().map(|s| s.as_slice()).collect();
    let hs = mul_vecs(&state.hint, LWE_N, &refs);
    answers
        .chunks_exact(rows.max(1))
        .zip(hs)
        .map(|(ans, h)| {
            ans.iter()
                .zip(h)
                .map(|(a, h)| {
                    let v = a.wrapping_sub(h).wrapping_add(DELTA / 2);
                    ((v >> (32 - PLAINTEXT_BITS)) as u8).wrapping_add(CENTRE as u8)
                })
                .collect()
        })
        .collect()
}

/// Scans a bucket for the id's tag and decrypts the value.
fn find_value(
    peer: &PartyId,
    index: usize,
    column: &[u8],
    tag: &[u8; TAG_BYTES],
    f: &oprf::OprfOutput,
    value_len: usize,
) -> Result<Option<Vec<u8>>, PirError> {
    let entry_len = TAG_BYTES + LEN_BYTES + value_len;
    let Some(entry) = column
        .chunks_exact(entry_len)
        .find(|e| &e[..TAG_BYTES] == tag)
    else {
        return Ok(None);
    };
    let mut payload = entry[TAG_BYTES..].to_vec();
    oprf::apply_pad(f, &mut payload);
    let len = u16::from_le_bytes([payload[0], payload[1]]) as usize;
    if len > value_len {
        return Err(PirError::protocol(
            peer,
            "answer.vectors",
            format!(
                "the entry of id #{index} declares a value of {len} bytes, longer than the \
                 table's value length {value_len}"
            ),
        ));
    }
    payload.truncate(LEN_BYTES + len);
    payload.drain(..LEN_BYTES);
    Ok(Some(payload))
}
