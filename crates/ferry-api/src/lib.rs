//! The request and response types of a Ferry node's REST API (`/api/v1`).
//!
//! One definition serves three readers: the node's handlers answer these types, the `ferry`
//! CLI reads them back, and the OpenAPI document (`GET /api/v1/openapi.json`) describes them
//! from their `JsonSchema` derives, which the web console reads. The JSON field names are the
//! ones the API has always used; a type here changing shape is an API change.
//!
//! The crate depends only on serde and schemars so that any client can use it. The store's
//! records are not reused directly (the store does not know about schemas); the node converts
//! them, and since a conversion goes through the JSON shape it is checked on every answer.
//!
//! Every error has one shape, [`ApiErrorBody`]: `{"error", "code", "field"?}`.

mod error;
pub mod events;
pub mod types;
pub mod validation;

pub use error::{ApiErrorBody, ErrorCode};
pub use types::*;
pub use validation::{JobValidation, SpecProblem, SpecProblemCode};
