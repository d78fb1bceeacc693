//! The Ferry node: what an organisation runs.
//!
//! * [`dsl`]: job specifications (YAML/JSON) and their validation.
//! * [`components`]: what each task can run and the parameters it accepts.

pub mod api;
pub mod components;
pub mod dsl;
pub mod node;

pub use node::{Control, Node, NodeError, Reuse};
