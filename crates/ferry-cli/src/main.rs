//! `ferry`: the single binary of the platform.

mod approvals_cmd;
mod audit_cmd;
mod backup_cmd;
mod bench;
mod client;
mod demo;
mod launch;
mod node_cmds;
mod peer_cmd;
mod project_cmd;
mod protocols;
mod psi_cmd;
mod query_cmd;
mod schedule_cmd;
mod service_cmd;
mod table;
mod user_cmd;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ferry_context::PartyId;
use ferry_transport::NodeDir;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "Ferry: privacy-preserving federated learning. Models travel, data stays home."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the demo: bank, telco and insurer nodes on this machine, PSI -> SecureBoost and LR -> evaluation over TLS.
    Demo(demo::DemoArgs),
    /// Private set intersection of files, one process per party over loopback TLS.
    Psi(psi_cmd::PsiArgs),
    /// Run a node: federation endpoint, scheduler and REST API.
    Serve {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// API tokens (works on the node directory directly).
    #[command(subcommand)]
    Token(node_cmds::TokenCommand),
    /// What waits on a person here: partners' proposals with their security settings, and when
    /// each expires (`[approvals] expire_hours`).
    Approvals {
        #[command(flatten)]
        target: node_cmds::Target,
    },
    /// Named users and their roles: add, list, roles, passwd, disable (works on the node
    /// directory directly).
    #[command(subcommand)]
    User(user_cmd::UserCommand),
    /// Register, list, describe, delete and grant datasets.
    #[command(subcommand)]
    Dataset(node_cmds::DatasetCommand),
    /// Submit jobs and follow them: status, logs, audit, approve, cancel, re-run.
    #[command(subcommand)]
    Job(node_cmds::JobCommand),
    /// The components a job can use: name, inputs, outputs and what each does
    /// (`--json`: with every parameter's JSON Schema, as `GET /api/v1/components` serves it).
    Components {
        #[arg(long)]
        json: bool,
    },
    /// Anonymous query (匿踪查询): look ids up in a partner's table without it learning which
    /// (run, list, show, result); offer query services over this node's datasets (publish,
    /// services, service, refresh, unpublish).
    #[command(subcommand)]
    Query(query_cmd::QueryCommand),
    /// Projects: create one and invite partners, list, show (members, datasets granted to it,
    /// jobs, models), approve or decline an invitation.
    #[command(subcommand)]
    Project(project_cmd::ProjectCommand),
    /// Scheduled jobs (create one with `ferry job schedule FILE --cron "..."`): list, show
    /// (runs and next fire times), pause, resume, delete; approve, reject or revoke a
    /// partner's schedule.
    #[command(subcommand)]
    Schedule(schedule_cmd::ScheduleCommand),
    /// The node's action log: verify its hash chain and checkpoints, export, list, sign a
    /// checkpoint now, show the checkpoints partners sent.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
    /// Job templates shipped with ferry: list them, or print one filled in for your parties.
    #[command(subcommand)]
    Template(node_cmds::TemplateCommand),
    /// The model library: list, show (signature checked), delete, deploy as a service.
    #[command(subcommand)]
    Model(node_cmds::ModelCommand),
    /// Model services (online federated inference): list, show, switch version, undeploy,
    /// predict; approve or reject a partner's deployment.
    #[command(subcommand)]
    Service(service_cmd::ServiceCommand),
    /// Create a node directory: configuration, private key (0600) and self-signed certificate.
    Init {
        /// This node's party name (letters, digits, '-', '_').
        #[arg(long)]
        party: String,
        /// Node directory to create.
        #[arg(long)]
        dir: PathBuf,
        /// Federation endpoint (gRPC over mutual TLS) listen address.
        #[arg(long, default_value = "127.0.0.1:7001")]
        listen: String,
        /// REST API listen address for local users.
        #[arg(long, default_value = "127.0.0.1:8001")]
        api: String,
        /// Run jobs proposed by partners without a local `ferry job approve` (the node still
        /// refuses jobs that read ungranted data).
        #[arg(long)]
        auto_approve: bool,
        /// Crypto suite: `default`, or `gm` (国密: SM2 model signatures, PSI over SM2 with
        /// SM3, only gm jobs accepted); written to `[crypto] suite` in ferry.toml.
        #[arg(long, default_value = "default")]
        suite: ferry_crypto::Suite,
        /// Encrypt the node's files at rest with SM4-GCM — models, datasets (uploaded,
        /// imported, derived by jobs), query tables and results (`[crypto] encrypt_at_rest`;
        /// the key is created in identity/at-rest.key, mode 0600).
        #[arg(long)]
        encrypt_at_rest: bool,
    },
    /// Partners: add, list, remove, rotate a certificate (on a running node, at once).
    #[command(subcommand)]
    Peer(peer_cmd::PeerCommand),
    /// This node's own key: show it, prepare a new one, activate it (see `ferry peer rotate`).
    #[command(subcommand)]
    Identity(peer_cmd::IdentityCommand),
    /// Copy a node's whole state (configuration, identity, partners, database, datasets,
    /// models) into a new directory with a manifest of every file's SHA-256. Works while the
    /// node runs (the database is copied as one consistent snapshot).
    Backup {
        /// Node directory (default: $FERRY_DIR or the current directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// New directory for the backup.
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup into a new node directory, after checking every file against the
    /// manifest.
    Restore {
        /// The backup directory (made by `ferry backup`).
        #[arg(long)]
        from: PathBuf,
        /// New node directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Run a protocol as one process per party on loopback over TLS, with fresh identities.
    Launch {
        /// Protocol name (ping-pong, all-gather, throughput).
        protocol: String,
        /// Parties and roles, e.g. bank:guest,telco:host.
        #[arg(long, default_value = "bank:guest,telco:host")]
        parties: String,
        /// Protocol parameters as JSON.
        #[arg(long, default_value = "{}")]
        params: String,
        /// Where node directories and logs go (default: a temporary directory, removed after).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
        /// Print the parties' outputs as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run one party of a launch (started by `ferry launch`).
    #[command(hide = true)]
    RunParty {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        session: String,
        #[arg(long)]
        roster: String,
        #[arg(long)]
        protocol: String,
        #[arg(long)]
        params_file: PathBuf,
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
        #[arg(long)]
        output: PathBuf,
    },
    /// Raw TCP echo/sink peer for the transport benchmark's baseline.
    #[command(hide = true)]
    TcpPeer,
    /// Measure Ferry's building blocks on this machine.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

pub(crate) fn node_dir(dir: Option<PathBuf>) -> PathBuf {
    dir.or_else(|| std::env::var_os("FERRY_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("."))
}

fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init {
            party,
            dir,
            listen,
            api,
            auto_approve,
            suite,
            encrypt_at_rest,
        } => {
            let party = PartyId::new(party)?;
            let mut node = NodeDir::init(&dir, &party, &listen, &api)?;
            if auto_approve {
                node.config.auto_approve = true;
                node.save()?;
            }
            if suite != ferry_crypto::Suite::Default || encrypt_at_rest {
                let crypto = ferry_node::crypto::CryptoSettings {
                    suite,
                    accept_suites: None,
                    encrypt_at_rest,
                };
                crypto
                    .write_to(&mut node.config.other)
                    .map_err(anyhow::Error::msg)?;
                node.save()?;
                // The keys exist from the start, so the first backup holds them.
                crypto.create_keys(&node).map_err(anyhow::Error::msg)?;
                println!(
                    "  crypto suite: {suite}{}",
                    if encrypt_at_rest {
                        ", model files encrypted at rest (SM4-GCM)"
                    } else {
                        ""
                    }
                );
            }
            let token_file = node_cmds::create_admin_token(&dir)?;
            let id = node.identity()?;
            println!("created node '{party}' in {}", dir.display());
            println!("  federation endpoint: {listen}   API: {api}");
            println!(
                "  certificate: {}  (give this file to your partners)",
                dir.join(&node.config.cert_file).display()
            );
            println!("  fingerprint: {}", id.fingerprint()?);
            println!(
                "  admin API token: {}  (the CLI uses it when given --dir)",
                token_file.display()
            );
            println!(
                "next: ferry peer add <partner> --addr <host:port> --cert <their cert.pem> --dir {}",
                dir.display()
            );
            Ok(())
        }
        Command::Peer(cmd) => peer_cmd::run(cmd),
        Command::Identity(cmd) => peer_cmd::run_identity(cmd),
        Command::Backup { dir, out } => backup_cmd::run_backup(node_dir(dir), out),
        Command::Restore { from, dir } => backup_cmd::run_restore(from, dir),
        Command::Launch {
            protocol,
            parties,
            params,
            work_dir,
            timeout_secs,
            json,
        } => {
            let roster = launch::parse_roster(&parties)?;
            let params: serde_json::Value =
                serde_json::from_str(&params).context("--params is not valid JSON")?;
            let tmp = tempfile::tempdir()?;
            let work_dir = work_dir.unwrap_or_else(|| tmp.path().to_path_buf());
            let outputs = launch::launch(&launch::Launch {
                roster,
                protocol,
                params,
                work_dir,
                timeout: Duration::from_secs(timeout_secs),
                binary: std::env::current_exe()?,
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&outputs)?);
            } else {
                println!(
                    "{:<12} {:<8} {:<6} {:>9} {:>12} {:>12} {:>11}",
                    "party", "role", "ok", "wall s", "sent B", "received B", "peak RSS"
                );
                for o in &outputs {
                    println!(
                        "{:<12} {:<8} {:<6} {:>9.3} {:>12} {:>12} {:>8} MiB",
                        o.party,
                        o.role,
                        o.ok,
                        o.wall_secs,
                        o.bytes_sent,
                        o.bytes_received,
                        o.peak_rss_kib / 1024
                    );
                }
                for o in &outputs {
                    match &o.error {
                        Some(e) => println!("{}: error: {e}", o.party),
                        None => println!("{}: {}", o.party, o.result),
                    }
                }
            }
            if outputs.iter().any(|o| !o.ok) {
                anyhow::bail!("at least one party failed");
            }
            Ok(())
        }
        Command::RunParty {
            dir,
            session,
            roster,
            protocol,
            params_file,
            timeout_secs,
            output,
        } => {
            let params = serde_json::from_slice(&std::fs::read(&params_file)?)?;
            let ok = launch::run_party(&launch::RunParty {
                dir,
                session,
                roster: launch::parse_roster(&roster)?,
                protocol,
                params,
                timeout: Duration::from_secs(timeout_secs),
                output,
            })?;
            if !ok {
                std::process::exit(2);
            }
            Ok(())
        }
        Command::TcpPeer => bench::transport::serve_tcp_peer(),
        Command::Demo(args) => demo::run(args),
        Command::Psi(args) => psi_cmd::run(args),
        Command::Serve { dir } => node_cmds::serve(&node_dir(dir)),
        Command::Token(cmd) => node_cmds::token(cmd),
        Command::User(cmd) => user_cmd::run(cmd),
        Command::Approvals { target } => approvals_cmd::approvals(target),
        Command::Dataset(cmd) => node_cmds::dataset(cmd),
        Command::Job(cmd) => node_cmds::job(cmd),
        Command::Model(cmd) => node_cmds::model(cmd),
        Command::Components { json } => node_cmds::components(json),
        Command::Template(cmd) => node_cmds::template(cmd),
        Command::Query(cmd) => query_cmd::run(cmd),
        Command::Project(cmd) => project_cmd::run(cmd),
        Command::Schedule(cmd) => schedule_cmd::run(cmd),
        Command::Service(cmd) => service_cmd::run(cmd),
        Command::Audit(cmd) => audit_cmd::run(cmd),
        Command::Bench(cmd) => bench::run(cmd),
    }
}
