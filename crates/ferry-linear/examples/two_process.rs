//! Hetero LR on default_credit with every party in its own process, talking over loopback
//! TCP (plain TCP: a stand-in for the TLS transport, to measure the protocol as separate
//! processes with separate thread pools sharing the machine's cores).
//!
//! ```text
//! cargo run --release -p ferry-linear --example two_process -- [--arbiter] [--epochs 3]
//!     [--batch 5000] [--key-bits 2048] [--scheme paillier|ou] [--data DIR]
//! ```
//!
//! The first process is the guest; it starts the host (and arbiter) as child processes of the
//! same executable, trains, predicts, and prints wall time, AUC and bytes exchanged.

use ferry_context::{Context, FederationError, PartyId, Role, Roster, Transport};
use ferry_crypto::SchemeKind;
use ferry_data::{Dataset, DatasetSpec, LabelKind};
use ferry_linear::{LinearParams, Mode, fit, predict};
use std::collections::{HashMap, VecDeque};
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

type Key = (PartyId, String, String); // (from, session, tag)

#[derive(Default)]
struct Mailbox {
    queues: Mutex<HashMap<Key, VecDeque<Vec<u8>>>>,
    ready: Condvar,
}

struct TcpTransport {
    writers: HashMap<PartyId, Mutex<BufWriter<TcpStream>>>,
    mailbox: Arc<Mailbox>,
}

fn write_bytes(w: &mut impl Write, b: &[u8]) -> std::io::Result<()> {
    w.write_all(&(b.len() as u64).to_le_bytes())?;
    w.write_all(b)
}

fn read_bytes(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 8];
    r.read_exact(&mut len)?;
    let mut b = vec![0u8; u64::from_le_bytes(len) as usize];
    r.read_exact(&mut b)?;
    Ok(b)
}

impl TcpTransport {
    /// Connects every pair of parties: the party listed earlier listens, the later one dials.
    fn connect(me: &PartyId, order: &[(PartyId, u16)]) -> Self {
        let mailbox = Arc::new(Mailbox::default());
        let my_index = order.iter().position(|(p, _)| p == me).expect("in order");
        let listener = TcpListener::bind(("127.0.0.1", order[my_index].1)).expect("bind");
        let mut writers = HashMap::new();
        let mut streams = Vec::new();
        for (peer, port) in &order[..my_index] {
            let stream = loop {
                match TcpStream::connect(("127.0.0.1", *port)) {
                    Ok(s) => break s,
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            };
            let mut w = &stream;
            write_bytes(&mut w, me.as_str().as_bytes()).expect("hello");
            streams.push((peer.clone(), stream));
        }
        for _ in my_index + 1..order.len() {
            let (stream, _) = listener.accept().expect("accept");
            let name = read_bytes(&mut &stream).expect("hello");
            let peer = PartyId::new(String::from_utf8(name).expect("utf8")).expect("name");
            streams.push((peer, stream));
        }
        for (peer, stream) in streams {
            stream.set_nodelay(true).ok();
            let reader = stream.try_clone().expect("clone");
            let mb = mailbox.clone();
            let from = peer.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::with_capacity(1 << 20, reader);
                while let (Ok(session), Ok(tag), Ok(payload)) =
                    (read_bytes(&mut r), read_bytes(&mut r), read_bytes(&mut r))
                {
                    let key = (
                        from.clone(),
                        String::from_utf8_lossy(&session).into_owned(),
                        String::from_utf8_lossy(&tag).into_owned(),
                    );
                    mb.queues
                        .lock()
                        .unwrap()
                        .entry(key)
                        .or_default()
                        .push_back(payload);
                    mb.ready.notify_all();
                }
            });
            writers.insert(peer, Mutex::new(BufWriter::with_capacity(1 << 20, stream)));
        }
        TcpTransport { writers, mailbox }
    }
}

impl Transport for TcpTransport {
    fn send(
        &self,
        session: &str,
        to: &PartyId,
        tag: &str,
        payload: Vec<u8>,
    ) -> Result<(), FederationError> {
        let unreachable = |e: std::io::Error| FederationError::Unreachable {
            peer: to.clone(),
            reason: e.to_string(),
        };
        let w = self
            .writers
            .get(to)
            .ok_or_else(|| FederationError::UnknownParty(to.clone()))?;
        let mut w = w.lock().unwrap();
        write_bytes(&mut *w, session.as_bytes()).map_err(unreachable)?;
        write_bytes(&mut *w, tag.as_bytes()).map_err(unreachable)?;
        write_bytes(&mut *w, &payload).map_err(unreachable)?;
        w.flush().map_err(unreachable)
    }

    fn recv(
        &self,
        session: &str,
        from: &PartyId,
        tag: &str,
        timeout: Duration,
    ) -> Result<Vec<u8>, FederationError> {
        let key = (from.clone(), session.to_string(), tag.to_string());
        let deadline = Instant::now() + timeout;
        let mut q = self.mailbox.queues.lock().unwrap();
        loop {
            if let Some(m) = q.get_mut(&key).and_then(|v| v.pop_front()) {
                return Ok(m);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(FederationError::Timeout {
                    peer: from.clone(),
                    tag: tag.to_string(),
                    session: session.to_string(),
                    timeout,
                });
            }
            q = self
                .mailbox
                .ready
                .wait_timeout(q, deadline - now)
                .unwrap()
                .0;
        }
    }
}

/// CPU seconds (user + system) this process has used so far (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let dir = value("--data").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets")
    });
    let with_arbiter = flag("--arbiter");
    let mut params = LinearParams {
        max_epochs: value("--epochs").map_or(3, |v| v.parse().expect("--epochs")),
        batch_size: Some(value("--batch").map_or(5000, |v| v.parse().expect("--batch"))),
        tolerance: 0.0,
        mode: if with_arbiter {
            Mode::WithArbiter
        } else {
            Mode::WithoutThirdParty
        },
        ..LinearParams::default()
    };
    params.he.key_bits = value("--key-bits").map_or(2048, |v| v.parse().expect("--key-bits"));
    params.he.allow_insecure_key_bits = params.he.key_bits < 2048;
    params.he.scheme =
        value("--scheme").map_or(SchemeKind::Paillier, |v| v.parse().expect("--scheme"));
    let base_port: u16 = value("--port").map_or(47310, |v| v.parse().expect("--port"));

    let mut order = vec![
        (PartyId::new("guest").unwrap(), base_port, Role::Guest),
        (PartyId::new("host").unwrap(), base_port + 1, Role::Host),
    ];
    if with_arbiter {
        order.push((
            PartyId::new("arbiter").unwrap(),
            base_port + 2,
            Role::Arbiter,
        ));
    }
    let roster = Roster::new(order.iter().map(|(p, _, r)| (p.clone(), *r)).collect()).unwrap();
    let role: Role = value("--role").map_or(Role::Guest, |r| r.parse().expect("--role"));
    let me = order.iter().find(|(_, _, r)| *r == role).unwrap().0.clone();

    let start = Instant::now();
    let mut children = Vec::new();
    if role == Role::Guest {
        let exe = std::env::current_exe().expect("own path");
        for (_, _, r) in &order[1..] {
            let mut child_args = args.clone();
            child_args.extend(["--role".to_string(), r.as_str().to_string()]);
            children.push(
                std::process::Command::new(&exe)
                    .args(&child_args)
                    .spawn()
                    .expect("spawn"),
            );
        }
    }
    let data = match role {
        Role::Guest => Some(
            Dataset::read_csv(
                dir.join("default_credit_hetero_guest.csv"),
                &DatasetSpec::with_label("y", LabelKind::Binary),
            )
            .expect("guest data"),
        ),
        Role::Host => Some(
            Dataset::read_csv(
                dir.join("default_credit_hetero_host.csv"),
                &DatasetSpec::features_only(),
            )
            .expect("host data"),
        ),
        Role::Arbiter => None,
    };
    let ports: Vec<(PartyId, u16)> = order
        .iter()
        .map(|(p, port, _)| (p.clone(), *port))
        .collect();
    let transport: Arc<dyn Transport> = Arc::new(TcpTransport::connect(&me, &ports));
    let ctx = Context::builder(me.clone(), roster, "bench", transport)
        .build()
        .unwrap();
    let connected = start.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let cpu0 = cpu_seconds();
    let trained = fit(&ctx, data.as_ref(), &params, None).expect("training");
    let train_seconds = t0.elapsed().as_secs_f64();
    let train_cpu = cpu_seconds() - cpu0;
    let t1 = Instant::now();
    let scores = match (role, &data) {
        (Role::Arbiter, _) | (_, None) => None,
        (_, Some(d)) => predict(&ctx, &trained.model, d).expect("prediction"),
    };
    let predict_seconds = t1.elapsed().as_secs_f64();
    let counters = ctx.counters();
    let r = &trained.report;
    eprintln!(
        "[{role}] train {train_seconds:.2} s, {train_cpu:.2} CPU s (setup {:.2} s, epochs {:?}), sent {:.1} MB, received {:.1} MB, ops {:?}",
        r.setup_seconds,
        r.epochs
            .iter()
            .map(|e| (e.seconds * 100.0).round() / 100.0)
            .collect::<Vec<_>>(),
        counters.bytes_sent() as f64 / 1e6,
        counters.bytes_received() as f64 / 1e6,
        r.he_ops
    );
    if role == Role::Guest {
        for mut c in children {
            c.wait().expect("child");
        }
        let d = data.expect("guest data");
        let auc =
            ferry_ml::metrics::auc(&scores.expect("guest scores"), d.labels().unwrap()).unwrap();
        println!(
            "{} processes, {}-{}, {} epochs, batch {:?}: training {train_seconds:.2} s \
             (after {connected:.2} s start-up), prediction {predict_seconds:.2} s, AUC {auc:.4}, \
             guest traffic {:.1} MB",
            if with_arbiter { 3 } else { 2 },
            params.he.scheme.name(),
            params.he.key_bits,
            params.max_epochs,
            params.batch_size,
            (counters.bytes_sent() + counters.bytes_received()) as f64 / 1e6
        );
    }
}
