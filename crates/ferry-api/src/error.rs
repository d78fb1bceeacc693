//! The one shape of every error the API answers.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What kind of failure an error is, as a stable `snake_case` word a client can branch on
/// (the message is for people and may change). Each code has one HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request is malformed or a value in it is not acceptable.
    InvalidInput,
    /// 401: no credentials, or credentials that are wrong, revoked or expired.
    Unauthorized,
    /// 403: the principal lacks the permission, a CSRF token is missing, or a path is outside
    /// what the node may read.
    Forbidden,
    /// 404: no such object.
    NotFound,
    /// 409: the object exists already, or is not in a state that allows the action.
    Conflict,
    /// 413: the body is larger than the node accepts.
    TooLarge,
    /// 422: a stored object failed its integrity check (a model's hash or signature).
    IntegrityFailed,
    /// 429: this client address failed its credentials too often and waits.
    LockedOut,
    /// 500: the node failed; the message says where.
    Internal,
    /// 502: a partner taking part in the request failed.
    PartnerFailed,
    /// 504: a partner taking part in the request did not answer in time.
    PartnerTimeout,
}

impl ErrorCode {
    /// Every code, in a fixed order (for documentation and tests).
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::InvalidInput,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::TooLarge,
        ErrorCode::IntegrityFailed,
        ErrorCode::LockedOut,
        ErrorCode::Internal,
        ErrorCode::PartnerFailed,
        ErrorCode::PartnerTimeout,
    ];

    /// The HTTP status an error of this code is answered with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidInput => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::TooLarge => 413,
            ErrorCode::IntegrityFailed => 422,
            ErrorCode::LockedOut => 429,
            ErrorCode::Internal => 500,
            ErrorCode::PartnerFailed => 502,
            ErrorCode::PartnerTimeout => 504,
        }
    }

    /// The code of an HTTP status (statuses without a code of their own are `internal` when
    /// 5xx, `invalid_input` otherwise).
    pub fn of_status(status: u16) -> ErrorCode {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.http_status() == status)
            .unwrap_or(if status >= 500 {
                ErrorCode::Internal
            } else {
                ErrorCode::InvalidInput
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::IntegrityFailed => "integrity_failed",
            ErrorCode::LockedOut => "locked_out",
            ErrorCode::Internal => "internal",
            ErrorCode::PartnerFailed => "partner_failed",
            ErrorCode::PartnerTimeout => "partner_timeout",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every error response: `{"error": "<message>", "code": "<code>", "field": "<location>"}`.
///
/// `error` stays the human-readable message (clients written before `code` existed read it).
/// `field` locates the problem in the request when there is one place to point at: a job
/// spec's `tasks[2].params.max_depth` or `tasks[train].params`, a dataset's column, the name
/// of a body field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ApiErrorBody {
    /// What went wrong, for people.
    pub error: String,
    pub code: ErrorCode,
    /// Where in the request (a spec location, a column, a body field), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiErrorBody {
    pub fn new(code: ErrorCode, error: impl Into<String>) -> Self {
        ApiErrorBody {
            error: error.into(),
            code,
            field: None,
        }
    }

    /// The same error, located at `field`.
    pub fn at(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl std::fmt::Display for ApiErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{} [{}, at {field}]", self.error, self.code),
            None => write!(f, "{} [{}]", self.error, self.code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialise_as_their_names_and_map_to_one_status_each() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().into()));
            assert_eq!(ErrorCode::of_status(code.http_status()), code);
        }
        assert_eq!(ErrorCode::of_status(503), ErrorCode::Internal);
        assert_eq!(ErrorCode::of_status(405), ErrorCode::InvalidInput);
    }

    #[test]
    fn the_body_omits_field_when_there_is_none_and_keeps_error_a_string() {
        let plain =
            serde_json::to_value(ApiErrorBody::new(ErrorCode::NotFound, "no job x")).unwrap();
        assert_eq!(
            plain,
            serde_json::json!({"error": "no job x", "code": "not_found"})
        );
        let located = ApiErrorBody::new(ErrorCode::InvalidInput, "must be positive")
            .at("tasks[train].params.max_depth");
        let v = serde_json::to_value(&located).unwrap();
        assert_eq!(v["field"], "tasks[train].params.max_depth");
        let back: ApiErrorBody = serde_json::from_value(v).unwrap();
        assert_eq!(back, located);
    }
}
