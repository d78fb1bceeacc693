//! `ferry approvals`: the to-do list of what waits on a person on this node.

use crate::node_cmds::Target;
use ferry_api::Approval;

/// `ferry approvals`: what waits on a person on this node, with each request's security
/// settings and when it expires.
pub fn approvals(target: Target) -> anyhow::Result<()> {
    let items: Vec<Approval> = target.client()?.get_typed("/api/v1/approvals")?;
    if target.json {
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    if items.is_empty() {
        println!("nothing waits for a decision on this node");
        return Ok(());
    }
    for item in &items {
        println!(
            "{} {} from '{}', asked {}, expires {}",
            item.kind, item.id, item.requested_by, item.requested_at, item.expires_at
        );
        for line in &item.security {
            println!("    {line}");
        }
        let (noun, no) = match item.kind.as_str() {
            "schedule" => ("schedule", "reject"),
            "project" => ("project", "decline"),
            _ => ("job", "reject"),
        };
        println!(
            "    decide: ferry {noun} approve {id} --dir {dir}   or   ferry {noun} {no} {id} --reason \"...\" --dir {dir}",
            id = item.id,
            dir = target.dir().display()
        );
    }
    Ok(())
}
