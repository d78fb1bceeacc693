//! Who may do what through a node's API: principals (API tokens and named users), the
//! permissions each role grants, and the permission each route needs ([`ROUTES`]).
//!
//! Roles separate duties (issue 13): an **admin** manages users, tokens and the node but
//! does not touch data or approve jobs; a **data steward** registers, grants, exports and
//! publishes data; a **modeller** submits jobs and runs queries; an **approver** approves or
//! rejects partners' proposals; an **auditor** reads everything, the audit trail included.
//! Every role may read the node's state. Whether one user may hold several roles is
//! `[users] allow_multiple_roles` (default: no).
//!
//! Tokens made before users existed keep working as service accounts: an `admin` token may do
//! everything, a `user` token everything but managing users, tokens and the node, a
//! `read_only` token only reads. A token created for a user (`ferry token create --user`)
//! acts as that user, with the user's roles.

use ferry_store::{TokenRole, UserRole};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One kind of action a route performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Read the node's state: datasets' metadata, jobs, models, services, queries.
    Read,
    /// Read and export the audit trail.
    ReadAudit,
    /// Register, delete, grant and revoke datasets; publish query services.
    ManageData,
    /// Take a dataset's rows out of the node.
    ExportData,
    /// Submit, cancel and re-run jobs.
    RunJobs,
    /// Approve or reject partners' proposals.
    Approve,
    /// Run anonymous queries against partners' services.
    RunQueries,
    /// Delete models.
    ManageModels,
    ManageUsers,
    ManageTokens,
    /// The node's own settings and anything not listed in [`ROUTES`].
    ManageNode,
    /// See and end one's own session.
    Session,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::ReadAudit => "read_audit",
            Permission::ManageData => "manage_data",
            Permission::ExportData => "export_data",
            Permission::RunJobs => "run_jobs",
            Permission::Approve => "approve",
            Permission::RunQueries => "run_queries",
            Permission::ManageModels => "manage_models",
            Permission::ManageUsers => "manage_users",
            Permission::ManageTokens => "manage_tokens",
            Permission::ManageNode => "manage_node",
            Permission::Session => "session",
        }
    }

    const ALL: [Permission; 12] = [
        Permission::Read,
        Permission::ReadAudit,
        Permission::ManageData,
        Permission::ExportData,
        Permission::RunJobs,
        Permission::Approve,
        Permission::RunQueries,
        Permission::ManageModels,
        Permission::ManageUsers,
        Permission::ManageTokens,
        Permission::ManageNode,
        Permission::Session,
    ];
}

use Permission::*;

/// What each role may do.
pub fn role_permissions(role: UserRole) -> &'static [Permission] {
    match role {
        UserRole::Admin => &[
            Read,
            ReadAudit,
            ManageUsers,
            ManageTokens,
            ManageNode,
            ManageModels,
            Session,
        ],
        UserRole::DataSteward => &[Read, ManageData, ExportData, Session],
        UserRole::Modeller => &[Read, RunJobs, RunQueries, Session],
        UserRole::Approver => &[Read, Approve, Session],
        UserRole::Auditor => &[Read, ReadAudit, Session],
    }
}

/// What a service-account token (one without a user) may do.
pub fn token_permissions(role: TokenRole) -> BTreeSet<Permission> {
    match role {
        TokenRole::Admin => Permission::ALL.into_iter().collect(),
        TokenRole::User => Permission::ALL
            .into_iter()
            .filter(|p| !matches!(p, ManageUsers | ManageTokens | ManageNode))
            .collect(),
        TokenRole::ReadOnly => [Read, Session].into_iter().collect(),
    }
}

/// How a principal proved who it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer <token>` (the token's name).
    Token(String),
    /// The console's session cookie; state-changing requests must echo this CSRF token.
    Session { csrf_token: String },
}

/// Who is making a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A service-account token.
    Token { name: String, role: TokenRole },
    /// A named user, through a personal token or a session.
    User {
        name: String,
        roles: Vec<UserRole>,
        credential: Credential,
    },
}

impl Principal {
    /// How records name it: `token:<name>` or `user:<name>`.
    pub fn actor(&self) -> String {
        match self {
            Principal::Token { name, .. } => format!("token:{name}"),
            Principal::User { name, .. } => format!("user:{name}"),
        }
    }

    pub fn permissions(&self) -> BTreeSet<Permission> {
        match self {
            Principal::Token { role, .. } => token_permissions(*role),
            Principal::User { roles, .. } => roles
                .iter()
                .flat_map(|r| role_permissions(*r).iter().copied())
                .collect(),
        }
    }

    /// The roles to show in an error or a who-am-I answer.
    pub fn role_names(&self) -> Vec<String> {
        match self {
            Principal::Token { role, .. } => vec![format!("{} token", role.as_str())],
            Principal::User { roles, .. } => roles.iter().map(|r| r.as_str().to_string()).collect(),
        }
    }
}

/// Every route of the API (method, path under `/api/v1`, permission). A route missing here
/// needs [`Permission::ManageNode`] for anything but `GET` (which needs [`Permission::Read`]),
/// so a new route is closed to everyone but admins until its rule is added.
pub const ROUTES: &[(&str, &str, Permission)] = &[
    ("GET", "/node", Read),
    ("GET", "/components", Read),
    ("GET", "/templates", Read),
    ("GET", "/datasets", Read),
    ("POST", "/datasets", ManageData),
    ("POST", "/datasets/{name}/upload", ManageData),
    ("GET", "/datasets/{name}", Read),
    ("DELETE", "/datasets/{name}", ManageData),
    ("POST", "/datasets/{name}/grants", ManageData),
    ("DELETE", "/datasets/{name}/grants", ManageData),
    ("GET", "/datasets/{name}/download", ExportData),
    ("GET", "/jobs", Read),
    ("POST", "/jobs", RunJobs),
    ("POST", "/jobs/validate", RunJobs),
    ("GET", "/jobs/{id}", Read),
    ("GET", "/jobs/{id}/logs", Read),
    ("GET", "/jobs/{id}/metrics", Read),
    ("GET", "/jobs/{id}/audit", ReadAudit),
    ("GET", "/jobs/{id}/privacy", Read),
    ("GET", "/approvals", Read),
    // Live updates of jobs and services: what GET /jobs/{id} and /services show, as it changes.
    ("GET", "/events", Read),
    ("POST", "/jobs/{id}/approve", Approve),
    ("POST", "/jobs/{id}/reject", Approve),
    ("POST", "/jobs/{id}/cancel", RunJobs),
    ("POST", "/jobs/{id}/rerun", RunJobs),
    ("POST", "/jobs/{id}/resume", RunJobs),
    // A schedule submits jobs: creating and steering one is running jobs; deciding on a
    // partner's schedule (and withdrawing that decision) is an approval.
    ("GET", "/schedules", Read),
    ("POST", "/schedules", RunJobs),
    ("GET", "/schedules/{id}", Read),
    ("DELETE", "/schedules/{id}", RunJobs),
    ("POST", "/schedules/{id}/pause", RunJobs),
    ("POST", "/schedules/{id}/resume", RunJobs),
    ("POST", "/schedules/{id}/approve", Approve),
    ("POST", "/schedules/{id}/reject", Approve),
    ("POST", "/schedules/{id}/revoke", Approve),
    // Deploying, switching and undeploying a model service steer what runs with partners, as
    // jobs do; deciding on a partner's deployment is an approval. Prediction is a read: an
    // application scores with a read-only token, and every request is in the guest's
    // request log.
    ("GET", "/services", Read),
    ("POST", "/services", RunJobs),
    ("GET", "/services/{name}", Read),
    ("DELETE", "/services/{name}", RunJobs),
    ("POST", "/services/{name}/switch", RunJobs),
    ("POST", "/services/{name}/approve", Approve),
    ("POST", "/services/{name}/reject", Approve),
    ("POST", "/services/{name}/predict", Read),
    ("GET", "/services/{name}/requests", Read),
    // Creating a project and inviting partners is a data-governance act (what the project's
    // grants open up is decided by data stewards); joining a partner's project is an approval.
    ("GET", "/projects", Read),
    ("POST", "/projects", ManageData),
    ("GET", "/projects/{name}", Read),
    ("POST", "/projects/{name}/approve", Approve),
    ("POST", "/projects/{name}/decline", Approve),
    ("GET", "/models", Read),
    ("GET", "/models/{name}", Read),
    ("DELETE", "/models/{name}", ManageModels),
    ("GET", "/query-services", Read),
    ("POST", "/query-services", ManageData),
    ("GET", "/query-services/{name}", Read),
    ("DELETE", "/query-services/{name}", ManageData),
    ("POST", "/query-services/{name}/refresh", ManageData),
    ("GET", "/queries", Read),
    ("POST", "/queries", RunQueries),
    ("GET", "/queries/{id}", Read),
    ("GET", "/queries/{id}/result", Read),
    // Partners are the node's trust roots: only an admin changes them.
    ("GET", "/partners", Read),
    ("POST", "/partners", ManageNode),
    ("POST", "/partners/{name}/rotate", ManageNode),
    ("DELETE", "/partners/{name}", ManageNode),
    ("GET", "/tokens", ManageTokens),
    ("POST", "/tokens", ManageTokens),
    ("DELETE", "/tokens/{name}", ManageTokens),
    ("GET", "/users", ManageUsers),
    ("POST", "/users", ManageUsers),
    ("POST", "/users/{name}/roles", ManageUsers),
    ("POST", "/users/{name}/password", ManageUsers),
    ("POST", "/users/{name}/disable", ManageUsers),
    ("GET", "/audit", ReadAudit),
    ("GET", "/audit/verify", ReadAudit),
    ("GET", "/audit/export", ReadAudit),
    ("GET", "/audit/checkpoints", ReadAudit),
    ("POST", "/audit/checkpoint", ReadAudit),
    // Last: the table-driven test signs its sessions out here.
    ("GET", "/session", Session),
    ("DELETE", "/session", Session),
];

/// The permission `method` on `route` (the matched pattern, with or without `/api/v1`) needs.
pub fn required(method: &str, route: &str) -> Permission {
    let route = route.strip_prefix("/api/v1").unwrap_or(route);
    ROUTES
        .iter()
        .find(|(m, r, _)| *m == method && *r == route)
        .map(|(_, _, p)| *p)
        .unwrap_or(if method == "GET" { Read } else { ManageNode })
}

/// `[users]` of `ferry.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserSettings {
    /// Whether one user may hold several roles (separation of duties says no).
    pub allow_multiple_roles: bool,
    /// How long a console session lasts.
    pub session_hours: u64,
    /// Mark the session cookie `Secure` (sent over HTTPS only; browsers also send it to
    /// `http://localhost`). Turn off only for a console reached over plain HTTP on a trusted
    /// network.
    pub secure_cookies: bool,
    /// Failed sign-ins or invalid tokens from one client address before it is locked out.
    pub max_failed_attempts: u32,
    /// How long those failures count, and how long a lockout lasts.
    pub lockout_minutes: u64,
}

impl Default for UserSettings {
    fn default() -> Self {
        UserSettings {
            allow_multiple_roles: false,
            session_hours: 8,
            secure_cookies: true,
            max_failed_attempts: 10,
            lockout_minutes: 5,
        }
    }
}

impl UserSettings {
    pub fn from_config(tables: &toml::Table) -> Result<UserSettings, String> {
        let settings: UserSettings = match tables.get("users") {
            None => UserSettings::default(),
            Some(t) => t
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| format!("[users]: {e}"))?,
        };
        if settings.session_hours == 0 || settings.session_hours > 24 * 30 {
            return Err(format!(
                "[users] session_hours = {} is outside 1..=720",
                settings.session_hours
            ));
        }
        if settings.max_failed_attempts == 0 || settings.lockout_minutes == 0 {
            return Err(
                "[users] max_failed_attempts and lockout_minutes must be at least 1".into(),
            );
        }
        Ok(settings)
    }

    /// Refuses role sets the node's policy does not allow.
    pub fn check_roles(&self, roles: &[UserRole]) -> Result<(), String> {
        let distinct: BTreeSet<_> = roles.iter().collect();
        if distinct.len() > 1 && !self.allow_multiple_roles {
            return Err(format!(
                "a user may hold one role on this node ([users] allow_multiple_roles = false); \
                 asked for {}",
                distinct
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(())
    }
}

/// Parses `admin,modeller` into roles, naming an unknown one.
pub fn parse_roles(text: &str) -> Result<Vec<UserRole>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| r.parse::<UserRole>().map_err(|e| e.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duties_are_separated() {
        let can = |role: UserRole, p: Permission| role_permissions(role).contains(&p);
        // Each duty belongs to exactly one non-admin role.
        for (p, owner) in [
            (ManageData, UserRole::DataSteward),
            (ExportData, UserRole::DataSteward),
            (RunJobs, UserRole::Modeller),
            (RunQueries, UserRole::Modeller),
            (Approve, UserRole::Approver),
        ] {
            for role in UserRole::ALL {
                assert_eq!(can(role, p), role == owner, "{role} / {p:?}");
            }
        }
        // The admin manages people and the node, not data or approvals.
        for p in [ManageData, ExportData, RunJobs, Approve, RunQueries] {
            assert!(!can(UserRole::Admin, p), "{p:?}");
        }
        for role in UserRole::ALL {
            assert!(can(role, Read) && can(role, Session), "{role}");
        }
    }

    #[test]
    fn unlisted_routes_are_closed_to_all_but_admins_and_the_prefix_is_optional() {
        assert_eq!(required("POST", "/api/v1/jobs/{id}/approve"), Approve);
        assert_eq!(required("POST", "/jobs/{id}/approve"), Approve);
        assert_eq!(required("POST", "/something/new"), ManageNode);
        assert_eq!(required("GET", "/something/new"), Read);
        assert!(!token_permissions(TokenRole::User).contains(&ManageNode));
        assert!(token_permissions(TokenRole::Admin).contains(&ManageNode));
        assert_eq!(
            token_permissions(TokenRole::ReadOnly),
            [Read, Session].into_iter().collect()
        );
        // Every rule names a distinct (method, route).
        let mut seen = BTreeSet::new();
        for (m, r, _) in ROUTES {
            assert!(seen.insert((m, r)), "{m} {r} listed twice");
        }
    }

    #[test]
    fn the_role_policy_is_read_from_users_and_checked() {
        let t: toml::Table = toml::from_str("[users]\nallow_multiple_roles = true\n").unwrap();
        let s = UserSettings::from_config(&t).unwrap();
        assert!(
            s.check_roles(&[UserRole::Modeller, UserRole::Approver])
                .is_ok()
        );
        let strict = UserSettings::default();
        let e = strict
            .check_roles(&[UserRole::Modeller, UserRole::Approver])
            .unwrap_err();
        assert!(
            e.contains("allow_multiple_roles = false") && e.contains("modeller, approver"),
            "{e}"
        );
        assert!(
            strict
                .check_roles(&[UserRole::Modeller, UserRole::Modeller])
                .is_ok()
        );
        let bad: toml::Table = toml::from_str("[users]\nsession_hours = 0\n").unwrap();
        assert!(
            UserSettings::from_config(&bad)
                .unwrap_err()
                .contains("session_hours")
        );
        assert_eq!(
            parse_roles("modeller, approver").unwrap(),
            vec![UserRole::Modeller, UserRole::Approver]
        );
        assert!(
            parse_roles("root")
                .unwrap_err()
                .contains("unknown role 'root'")
        );
    }
}
