//! `ferry approvals`: the to-do list of what waits on a person on this node.

use crate::node_cmds::Target;
use crate::table::text;

/// `ferry approvals`: what waits on a person on this node, with each request's security
/// settings and when it expires.
pub fn approvals(target: Target) -> anyhow::Result<()> {
    let v = target.client()?.get("/api/v1/approvals")?;
    if target.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let items = v.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("nothing waits for a decision on this node");
        return Ok(());
    }
    for item in &items {
        println!(
            "{} {} from '{}', asked {}, expires {}",
            text(&item["kind"]),
            text(&item["id"]),
            text(&item["requested_by"]),
            text(&item["requested_at"]),
            text(&item["expires_at"])
        );
        for line in item["security"].as_array().into_iter().flatten() {
            println!("    {}", text(line));
        }
        if text(&item["kind"]) == "schedule" {
            println!(
                "    decide: ferry schedule approve {id} --dir {dir}   or   ferry schedule reject {id} --reason \"...\" --dir {dir}",
                id = text(&item["id"]),
                dir = target.dir().display()
            );
        } else if text(&item["kind"]) == "project" {
            println!(
                "    decide: ferry project approve {id} --dir {dir}   or   ferry project decline {id} --reason \"...\" --dir {dir}",
                id = text(&item["id"]),
                dir = target.dir().display()
            );
        } else {
            println!(
                "    decide: ferry job approve {id} --dir {dir}   or   ferry job reject {id} --reason \"...\" --dir {dir}",
                id = text(&item["id"]),
                dir = target.dir().display()
            );
        }
    }
    Ok(())
}
