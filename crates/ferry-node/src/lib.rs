//! The Ferry node: what an organisation runs.
//!
//! * [`access`]: who may do what through the API (principals, roles, permissions per route).
//! * [`audit`]: the action log (who did what, when, from where, with what outcome) as a hash
//!   chain, and the signed checkpoints nodes exchange.
//! * [`approvals`]: what waits on a person (partners' proposals) and its expiry.
//! * [`dsl`]: job specifications (YAML/JSON) and their validation.
//! * [`components`]: what each task can run and the parameters it accepts.
//! * [`cron`]: five-field cron expressions (UTC or a fixed offset) for scheduled jobs.
//! * [`export`]: a dataset's rows out of the node (the streamed download).
//! * [`import`]: which files on the node's machine may be registered as datasets by path.
//! * [`liveness`]: heartbeats to partners in running jobs; a silent partner fails the job.
//! * [`partners`]: adding, removing and rotating partners' certificates on a running node.
//! * [`policy`]: the settings no job may go below on this node (`[policy]` in `ferry.toml`).
//! * [`privacy`]: a job's privacy report (what each party revealed to whom, per task).
//! * [`projects`]: projects across nodes (partners invited and joining by approval, grants to
//!   a project, jobs naming their project).
//! * [`schedules`]: scheduled jobs (a spec with a cron expression, approved once by the
//!   partners; every run an ordinary job listed under the schedule).
//! * [`query`]: anonymous query (匿踪查询): query services over datasets (provider) and
//!   queries of partners' services (querier), on `ferry-pir`.
//! * [`serving`]: model deployment and online federated inference (model services, feature
//!   tables, long-lived serving sessions with the hosts).
//! * [`templates`]: job templates shipped with the binary (joint scorecard, joint marketing).

pub mod access;
pub mod api;
pub mod approvals;
pub mod audit;
pub mod components;
pub mod console;
pub mod cron;
pub mod crypto;
pub mod dsl;
pub mod export;
pub mod import;
pub mod liveness;
pub mod node;
pub mod partners;
pub mod policy;
pub mod privacy;
pub mod projects;
pub mod query;
pub mod schedules;
pub mod serving;
pub mod templates;

pub use node::{Control, Node, NodeError, Reuse};
