//! `ferry user ...`: named users and their roles. Like `ferry token`, these work on the node
//! directory directly, so the first admin can be created before the server runs.

use crate::node_cmds::{open_store, record_cli_action};
use crate::table::{self, left};
use anyhow::{Context as _, bail};
use clap::Subcommand;
use ferry_node::access::{UserSettings, parse_roles};
use std::io::BufRead;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user. The password is read from standard input (one line), so it never
    /// appears in the shell history or the process list.
    Add {
        name: String,
        /// admin, data_steward, modeller, approver or auditor (several, comma separated, only
        /// where `[users] allow_multiple_roles = true`).
        #[arg(long)]
        role: String,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// List users and their roles.
    List {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Replace a user's roles.
    Roles {
        name: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Set a user's password (read from standard input); the user's sessions end.
    Passwd {
        name: String,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Disable a user: no sign-in, sessions ended, personal tokens revoked (the record stays).
    Disable {
        name: String,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn read_password() -> anyhow::Result<String> {
    eprintln!("password (one line on standard input):");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("no password given on standard input");
    }
    Ok(password)
}

fn settings(dir: &std::path::Path) -> anyhow::Result<UserSettings> {
    let node = ferry_transport::NodeDir::open(dir)?;
    UserSettings::from_config(&node.config.other).map_err(|e| anyhow::anyhow!("{e}"))
}

fn role_list(roles: &[ferry_store::UserRole]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub fn run(cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add { name, role, dir } => {
            let dir = crate::node_dir(dir);
            let roles = parse_roles(&role).map_err(|e| anyhow::anyhow!("{e}"))?;
            settings(&dir)?
                .check_roles(&roles)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let password = read_password()?;
            let (_, store) = open_store(&dir)?;
            let user = store.create_user(&name, &roles, &password)?;
            record_cli_action(
                &store,
                "user.add",
                format!("user={}; roles={}", user.name, role_list(&user.roles)),
            )?;
            println!(
                "user '{}' created ({}); sign in to the console, or give the user a token: \
                 ferry token create --name {}-cli --user {} --dir {}",
                user.name,
                user.roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                user.name,
                user.name,
                dir.display()
            );
        }
        UserCommand::List { dir } => {
            let (_, store) = open_store(&crate::node_dir(dir))?;
            let rows: Vec<Vec<String>> = store
                .list_users()?
                .into_iter()
                .map(|u| {
                    vec![
                        u.name,
                        u.roles
                            .iter()
                            .map(|r| r.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        u.created_at,
                        u.disabled_at.unwrap_or_default(),
                    ]
                })
                .collect();
            table::print(
                "",
                &[
                    left("name"),
                    left("roles"),
                    left("created"),
                    left("disabled"),
                ],
                &rows,
            );
        }
        UserCommand::Roles { name, role, dir } => {
            let dir = crate::node_dir(dir);
            let roles = parse_roles(&role).map_err(|e| anyhow::anyhow!("{e}"))?;
            settings(&dir)?
                .check_roles(&roles)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let (_, store) = open_store(&dir)?;
            let user = store.set_user_roles(&name, &roles)?;
            record_cli_action(
                &store,
                "user.roles",
                format!("user={}; roles={}", user.name, role_list(&user.roles)),
            )?;
            println!(
                "user '{}' now holds: {}",
                user.name,
                user.roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        UserCommand::Passwd { name, dir } => {
            let password = read_password()?;
            let (_, store) = open_store(&crate::node_dir(dir))?;
            store.set_user_password(&name, &password)?;
            record_cli_action(&store, "user.password", format!("user={name}"))?;
            println!("password of '{name}' changed; its sessions ended");
        }
        UserCommand::Disable { name, dir } => {
            let (_, store) = open_store(&crate::node_dir(dir))?;
            store.disable_user(&name)?;
            record_cli_action(&store, "user.disable", format!("user={name}"))?;
            println!(
                "user '{name}' disabled; its sessions ended and its personal tokens were revoked"
            );
        }
    }
    Ok(())
}
