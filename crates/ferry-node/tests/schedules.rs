//! Scheduled jobs between two nodes: the partner approves the schedule once (through its
//! approvals list), runs fire as ordinary jobs listed under the schedule and succeed on both
//! nodes without a second approval, a run does not start while the previous one is
//! unfinished, missed fire times run once, pause stops runs, a run with a changed spec goes to
//! ordinary approval, and a partner's revocation refuses the next run with its reason.

mod common;

use axum::http::StatusCode;
use common::Cluster;
use ferry_context::{PartyId, Transport};
use ferry_node::Node;
use ferry_node::node::{CONTROL_SESSION, Control};
use ferry_store::{GrantTarget, JobStatus, RunOutcome, ScheduleStatus, TokenRole};
use serde_json::{Value, json};
use std::time::Duration;

const SPEC: &str = "name: nightly-psi\nparties: {guest: bank, hosts: [telco]}\ntimeout_secs: 60\ntasks:\n  \
     - {name: read, component: reader, party_params: {bank: {dataset: mydata}, telco: {dataset: mydata}}}\n  \
     - {name: psi, component: psi, inputs: {data: read}}\n";

/// Once a year (1 January, 00:00 UTC): the test decides when fire times come, and the
/// node's own tick never fires it by itself while the test runs.
const YEARLY: &str = "0 0 1 1 *";

fn call(
    router: &axum::Router,
    method: &str,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    common::call(router, method, uri, Some(token), body)
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    common::wait_for(what, Duration::from_secs(30), || ok().then_some(()));
}

fn status(node: &Node, id: &str) -> Option<ScheduleStatus> {
    node.store()
        .find_schedule(id)
        .ok()
        .flatten()
        .map(|s| s.status)
}

/// Seconds since 1970 of a store time.
fn secs(t: &str) -> i64 {
    ferry_node::cron::parse_store_time(t).unwrap()
}

fn next_run(node: &Node, id: &str) -> i64 {
    secs(
        node.store()
            .schedule(id)
            .unwrap()
            .next_run
            .as_deref()
            .expect("an active schedule has a next fire time"),
    )
}

/// Fires the schedule's next fire time on the guest and returns what became of it.
fn fire(node: &Node, id: &str) -> Result<String, String> {
    let ran = node.run_due_schedules(next_run(node, id));
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!(ran[0].0, id);
    ran[0].1.clone()
}

#[test]
fn a_schedule_approved_once_runs_as_ordinary_jobs_until_paused_or_revoked() {
    // No automatic approval: the partner's decision is a person's.
    let c = Cluster::pinned(&["bank", "telco"], false, Some(&common::test_policy()));
    common::register_data(&c, 200);
    let (bank, telco) = (&c.nodes[0], &c.nodes[1]);
    telco
        .store()
        .grant("mydata", GrantTarget::Party("bank".into()))
        .unwrap();
    let bank_api = ferry_node::api::router(bank.clone());
    let telco_api = ferry_node::api::router(telco.clone());
    let bank_token = bank.store().create_token("t", TokenRole::Admin).unwrap().1;
    let telco_token = telco.store().create_token("t", TokenRole::Admin).unwrap().1;

    // The spec and the cron are checked as `ferry job submit` checks a job.
    let (st, body) = call(
        &bank_api,
        "POST",
        "/api/v1/schedules",
        &bank_token,
        Some(json!({"spec": SPEC, "cron": "0 25 * * *"})),
    );
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("hour field '25'"),
        "{body}"
    );
    let (st, body) = call(
        &bank_api,
        "POST",
        "/api/v1/schedules",
        &bank_token,
        Some(
            json!({"spec": SPEC.replace("bank: {dataset: mydata}", "bank: {dataset: nosuch}"), "cron": YEARLY}),
        ),
    );
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("nosuch"), "{body}");

    let (st, created) = call(
        &bank_api,
        "POST",
        "/api/v1/schedules",
        &bank_token,
        Some(json!({"spec": SPEC, "cron": YEARLY})),
    );
    assert_eq!(st, StatusCode::OK, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["name"], "nightly-psi");
    assert_eq!(created["status"], "pending_approval");
    assert_eq!(created["created_by"], "token:t");
    // Nothing fires before every partner approved.
    assert!(bank.run_due_schedules(i64::MAX / 2).is_empty());

    // The proposal waits in telco's approvals list, with what approving means.
    wait_for("the schedule in telco's approvals", || {
        status(telco, &id) == Some(ScheduleStatus::PendingApproval)
    });
    let todo = telco.pending_approvals().unwrap();
    assert_eq!(todo.len(), 1, "{todo:?}");
    assert_eq!(
        (
            todo[0].kind.as_str(),
            todo[0].id.as_str(),
            todo[0].requested_by.as_str()
        ),
        ("schedule", id.as_str(), "bank")
    );
    assert!(
        todo[0]
            .security
            .iter()
            .any(|l| l.contains("cron '0 0 1 1 *' (UTC)")),
        "{:?}",
        todo[0].security
    );
    // Only the guest steers the schedule; the partner decides on it.
    let (st, body) = call(
        &telco_api,
        "POST",
        &format!("/api/v1/schedules/{id}/pause"),
        &telco_token,
        None,
    );
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");

    // Approved with the same route as any other approval.
    let (st, body) = call(
        &telco_api,
        "POST",
        &format!("/api/v1/jobs/{id}/approve"),
        &telco_token,
        None,
    );
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(telco.pending_approvals().unwrap().is_empty());
    wait_for("the schedule active on bank", || {
        status(bank, &id) == Some(ScheduleStatus::Active)
    });
    let (_, view) = call(
        &bank_api,
        "GET",
        &format!("/api/v1/schedules/{id}"),
        &bank_token,
        None,
    );
    assert_eq!(view["role"], "guest");
    assert_eq!(view["timezone"], "UTC");
    assert_eq!(view["upcoming"].as_array().unwrap().len(), 3);
    assert!(
        view["upcoming"][0]
            .as_str()
            .unwrap()
            .contains("-01-01T00:00:00.000Z")
    );

    // The first fire time submits a job; the next one, while that job is unfinished, is
    // skipped (and recorded as such).
    let first = fire(bank, &id).expect("the first run is submitted");
    let skipped = fire(bank, &id).unwrap_err();
    assert!(
        skipped.contains(&format!("previous run {first} is still")),
        "{skipped}"
    );
    common::wait_succeeded(bank, &first, Duration::from_secs(120));
    common::wait_succeeded(telco, &first, Duration::from_secs(60));
    // telco accepted it as a run of the approved schedule, without a second approval.
    let telco_runs = telco.store().schedule_runs(&id).unwrap();
    assert_eq!(telco_runs.len(), 1);
    assert_eq!(telco_runs[0].job_id.as_deref(), Some(first.as_str()));
    assert_eq!(telco_runs[0].outcome, RunOutcome::Accepted);
    assert_eq!(telco_runs[0].job_status.as_deref(), Some("succeeded"));

    // The run is an ordinary job, listed under the schedule.
    let (_, view) = call(
        &bank_api,
        "GET",
        &format!("/api/v1/schedules/{id}"),
        &bank_token,
        None,
    );
    assert_eq!(view["run_count"], 1);
    assert_eq!(view["last_job_id"], json!(first));
    let runs = view["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{view}");
    assert_eq!(
        (runs[0]["job_id"].clone(), runs[0]["job_status"].clone()),
        (json!(first), json!("succeeded"))
    );
    assert_eq!(
        (runs[1]["outcome"].clone(), runs[1]["job_id"].clone()),
        (json!("skipped"), Value::Null)
    );
    let (_, jobs) = call(&bank_api, "GET", "/api/v1/jobs", &bank_token, None);
    assert!(
        jobs.as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == json!(first))
    );
    let (_, job) = call(
        &bank_api,
        "GET",
        &format!("/api/v1/jobs/{first}"),
        &bank_token,
        None,
    );
    assert_eq!(job["schedule"], json!(id));
    let (_, job) = call(
        &telco_api,
        "GET",
        &format!("/api/v1/jobs/{first}"),
        &telco_token,
        None,
    );
    assert_eq!(
        job["schedule"],
        json!(id),
        "listed under the schedule on telco too"
    );

    // Fire times missed while the node was not ticking run once, not once per missed slot;
    // the node's own 2-second tick does it, and the next fire time is counted from now.
    let before = bank.store().schedule(&id).unwrap().run_count;
    bank.store()
        .set_schedule_status(
            &id,
            ScheduleStatus::Active,
            None,
            Some("2020-01-01T00:00:00.000Z"),
        )
        .unwrap();
    wait_for("the missed fire times to run", || {
        bank.store().schedule(&id).unwrap().run_count > before
    });
    let rec = bank.store().schedule(&id).unwrap();
    assert_eq!(
        rec.run_count,
        before + 1,
        "one run for six missed fire times"
    );
    assert!(secs(rec.next_run.as_deref().unwrap()) > ferry_node::schedules::unix_now());
    let caught_up = rec.last_job_id.unwrap();
    common::wait_succeeded(bank, &caught_up, Duration::from_secs(120));
    common::wait_succeeded(telco, &caught_up, Duration::from_secs(60));

    // Paused: no runs; the partner is told. Resumed: it fires again.
    let (st, body) = call(
        &bank_api,
        "POST",
        &format!("/api/v1/schedules/{id}/pause"),
        &bank_token,
        None,
    );
    assert_eq!(
        (st, body["status"].clone()),
        (StatusCode::OK, json!("paused")),
        "{body}"
    );
    assert!(bank.run_due_schedules(i64::MAX / 2).is_empty());
    wait_for("telco to see the pause", || {
        status(telco, &id) == Some(ScheduleStatus::Paused)
    });
    let (st, body) = call(
        &bank_api,
        "POST",
        &format!("/api/v1/schedules/{id}/resume"),
        &bank_token,
        None,
    );
    assert_eq!(
        (st, body["status"].clone()),
        (StatusCode::OK, json!("active")),
        "{body}"
    );
    wait_for("telco to see the resume", || {
        status(telco, &id) == Some(ScheduleStatus::Active)
    });

    // A run naming the schedule with another spec (here: a longer timeout) is not accepted
    // on the schedule's approval: it waits for an ordinary one on telco.
    let changed =
        ferry_node::dsl::JobSpec::parse(&SPEC.replace("timeout_secs: 60", "timeout_secs: 61"))
            .unwrap()
            .to_json();
    let msg = Control::Propose {
        job_id: "job-changed-spec".into(),
        spec_json: changed,
        reuse: None,
        schedule: Some(id.clone()),
    };
    bank.transport()
        .send(
            CONTROL_SESSION,
            &PartyId::new("telco").unwrap(),
            "control",
            serde_json::to_vec(&msg).unwrap(),
        )
        .unwrap();
    wait_for("the changed run on telco", || {
        telco.store().job("job-changed-spec").is_ok()
    });
    assert_eq!(
        telco.store().job("job-changed-spec").unwrap().status,
        JobStatus::PendingApproval
    );
    assert!(
        telco
            .pending_approvals()
            .unwrap()
            .iter()
            .any(|a| a.kind == "job" && a.id == "job-changed-spec")
    );
    let last = telco.store().schedule_runs(&id).unwrap().pop().unwrap();
    assert_eq!(last.outcome, RunOutcome::NeedsApproval);
    assert!(
        last.detail
            .unwrap()
            .contains("differs from the approved one")
    );

    // telco revokes its approval: bank is told, and its next run is refused with the reason.
    let (st, body) = call(
        &telco_api,
        "POST",
        &format!("/api/v1/schedules/{id}/revoke"),
        &telco_token,
        Some(json!({"reason": "grant under review"})),
    );
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(status(telco, &id), Some(ScheduleStatus::Revoked));
    wait_for("bank to record the revocation", || {
        bank.store()
            .schedule(&id)
            .unwrap()
            .parties
            .iter()
            .any(|p| p.party == "telco" && p.decision.as_str() == "revoked")
    });
    let refused = fire(bank, &id).expect("the guest still submits; the partner refuses");
    let row = common::wait_done(bank, &refused, Duration::from_secs(60));
    assert_eq!(row.status, JobStatus::Failed);
    let reason = row.reason.unwrap_or_default();
    assert!(
        reason.contains("revoked its approval") && reason.contains("grant under review"),
        "{reason}"
    );

    // Deleted: gone from the list (kept with ?deleted=true), never fires, partner told.
    let (st, _) = call(
        &bank_api,
        "DELETE",
        &format!("/api/v1/schedules/{id}"),
        &bank_token,
        None,
    );
    assert_eq!(st, StatusCode::OK);
    let (_, list) = call(&bank_api, "GET", "/api/v1/schedules", &bank_token, None);
    assert_eq!(list, json!([]));
    let (_, list) = call(
        &bank_api,
        "GET",
        "/api/v1/schedules?deleted=true",
        &bank_token,
        None,
    );
    assert_eq!(list[0]["status"], "deleted");
    assert!(bank.run_due_schedules(i64::MAX / 2).is_empty());
    wait_for("telco to see the deletion", || {
        status(telco, &id) == Some(ScheduleStatus::Deleted)
    });
}

#[test]
fn a_partner_rejecting_a_schedule_stops_it_and_its_policy_applies_at_approval() {
    let c = Cluster::pinned(&["bank", "telco"], false, Some(&common::test_policy()));
    common::register_data(&c, 50);
    let (bank, telco) = (&c.nodes[0], &c.nodes[1]);
    // No grant to bank yet: the proposal is refused on the spot, naming only what it named.
    let created = bank
        .create_schedule(&ferry_node::schedules::ScheduleRequest {
            spec: SPEC.into(),
            cron: YEARLY.into(),
            actor: "user:alice".into(),
            ..Default::default()
        })
        .unwrap();
    wait_for("bank to hear the refusal", || {
        status(bank, &created.id) == Some(ScheduleStatus::Rejected)
    });
    let reason = bank.store().schedule(&created.id).unwrap().reason.unwrap();
    assert!(
        reason.contains("party 'telco' rejected the schedule") && reason.contains("'mydata'"),
        "{reason}"
    );
    assert!(bank.run_due_schedules(i64::MAX / 2).is_empty());
    assert!(telco.pending_approvals().unwrap().is_empty());

    // With the grant, the proposal waits; a grant withdrawn before approval refuses the
    // approval (the checks run again when a person approves).
    telco
        .store()
        .grant("mydata", GrantTarget::Party("bank".into()))
        .unwrap();
    let second = bank
        .create_schedule(&ferry_node::schedules::ScheduleRequest {
            spec: SPEC.into(),
            cron: "30 2 * * MON-FRI".into(),
            timezone: Some("+08:00".into()),
            actor: "user:alice".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(second.utc_offset_minutes, 480);
    wait_for("the proposal on telco", || {
        status(telco, &second.id) == Some(ScheduleStatus::PendingApproval)
    });
    telco
        .store()
        .revoke_grant("mydata", &GrantTarget::Party("bank".into()))
        .unwrap();
    let e = telco.approve_schedule(&second.id).unwrap_err().to_string();
    assert!(
        e.contains("cannot be approved") && e.contains("mydata"),
        "{e}"
    );
    telco
        .reject_schedule(&second.id, "not this quarter")
        .unwrap();
    wait_for("bank to hear the rejection", || {
        status(bank, &second.id) == Some(ScheduleStatus::Rejected)
    });
    let reason = bank.store().schedule(&second.id).unwrap().reason.unwrap();
    assert!(reason.contains("not this quarter"), "{reason}");
}

#[test]
fn fire_times_missed_while_the_guest_was_down_run_once_at_start_up() {
    // telco approves automatically.
    let c = Cluster::pinned(&["bank", "telco"], true, Some(&common::test_policy()));
    common::register_data(&c, 50);
    let telco = &c.nodes[1];
    telco
        .store()
        .grant("mydata", GrantTarget::Party("bank".into()))
        .unwrap();
    let created = c.nodes[0]
        .create_schedule(&ferry_node::schedules::ScheduleRequest {
            spec: SPEC.into(),
            cron: YEARLY.into(),
            actor: "user:alice".into(),
            ..Default::default()
        })
        .unwrap();
    let id = created.id;
    wait_for("the schedule active on bank", || {
        status(&c.nodes[0], &id) == Some(ScheduleStatus::Active)
    });
    // bank stops; while it is down, fire times pass (here: every 1 January since 2020).
    c.nodes[0].shutdown();
    c.nodes[0]
        .store()
        .set_schedule_status(
            &id,
            ScheduleStatus::Active,
            None,
            Some("2020-01-01T00:00:00.000Z"),
        )
        .unwrap();
    let bank = Node::start(ferry_transport::NodeDir::open(&c.dirs[0]).unwrap()).unwrap();
    wait_for("the overdue schedule to run", || {
        bank.store().schedule(&id).unwrap().run_count > 0
    });
    let rec = bank.store().schedule(&id).unwrap();
    let job = rec.last_job_id.clone().unwrap();
    common::wait_succeeded(&bank, &job, Duration::from_secs(120));
    common::wait_succeeded(telco, &job, Duration::from_secs(60));
    // Once, not once per missed fire time; the next one is counted from now.
    let rec = bank.store().schedule(&id).unwrap();
    assert_eq!(rec.run_count, 1, "{:?}", bank.store().schedule_runs(&id));
    let next = secs(rec.next_run.as_deref().unwrap());
    let now = ferry_node::schedules::unix_now();
    assert!(
        next > now && next <= now + 366 * 86_400,
        "{:?}",
        rec.next_run
    );
    bank.shutdown();
}

/// A partner's schedule messages are checked before anything is stored: a malformed id, a
/// cron that never fires, an oversized spec and a spec whose guest is not the sender are
/// refused (each refusal in the action log); a state change or a decision from a party that
/// may not make it changes nothing.
#[test]
fn a_partner_s_schedule_messages_are_checked_before_anything_is_stored() {
    let c = Cluster::pinned(&["bank", "telco"], false, Some(&common::test_policy()));
    common::register_data(&c, 20);
    let (bank, telco) = (&c.nodes[0], &c.nodes[1]);
    telco
        .store()
        .grant("mydata", GrantTarget::Party("bank".into()))
        .unwrap();
    let spec_json = ferry_node::dsl::JobSpec::parse(SPEC).unwrap().to_json();
    let to_telco = |msg: &Control| {
        bank.transport()
            .send(
                CONTROL_SESSION,
                &PartyId::new("telco").unwrap(),
                "control",
                serde_json::to_vec(msg).unwrap(),
            )
            .unwrap();
    };
    let proposal = |id: &str, spec: &str, cron: &str| Control::ScheduleProposal {
        schedule: id.into(),
        name: "s".into(),
        spec_json: spec.into(),
        cron: cron.into(),
        utc_offset_minutes: 0,
    };
    to_telco(&proposal("sched-../x", &spec_json, YEARLY));
    to_telco(&proposal("sched-never", &spec_json, "0 0 30 2 *"));
    to_telco(&proposal("sched-huge", &"x".repeat(1_100_000), YEARLY));
    let telco_is_guest = SPEC.replace(
        "{guest: bank, hosts: [telco]}",
        "{guest: telco, hosts: [bank]}",
    );
    let telco_is_guest = ferry_node::dsl::JobSpec::parse(&telco_is_guest)
        .unwrap()
        .to_json();
    to_telco(&proposal("sched-not-yours", &telco_is_guest, YEARLY));
    // The guest of a schedule telco does not have cannot change anything, and a decision
    // on it from bank (the guest, not a partner) is ignored by telco, which is no guest.
    to_telco(&Control::ScheduleState {
        schedule: "sched-unknown".into(),
        status: ScheduleStatus::Deleted,
        reason: None,
    });
    // A good one last: messages are handled in order, so once it is in, the others are done.
    to_telco(&proposal("sched-good", &spec_json, YEARLY));
    wait_for("the good proposal on telco", || {
        status(telco, "sched-good") == Some(ScheduleStatus::PendingApproval)
    });
    to_telco(&Control::ScheduleDecision {
        schedule: "sched-good".into(),
        decision: ferry_store::PartyDecision::Approved,
        reason: None,
    });

    assert!(
        telco
            .store()
            .find_schedule("sched-never")
            .unwrap()
            .is_none()
    );
    assert!(telco.store().find_schedule("sched-huge").unwrap().is_none());
    let not_yours = telco.store().schedule("sched-not-yours").unwrap();
    assert_eq!(not_yours.status, ScheduleStatus::Rejected);
    assert!(
        not_yours
            .reason
            .as_deref()
            .unwrap()
            .contains("the job's guest is 'telco' but the schedule was proposed by 'bank'"),
        "{:?}",
        not_yours.reason
    );
    let ids: Vec<String> = telco
        .list_schedules(true)
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["sched-not-yours", "sched-good"]);
    let refused: Vec<String> = telco
        .store()
        .actions(&Default::default())
        .unwrap()
        .into_iter()
        .filter(|a| a.action == "schedule.propose" && a.actor == "party:bank")
        .filter_map(|a| a.detail)
        .collect();
    for want in [
        "invalid schedule id",
        "never fires",
        "larger than 1048576 bytes",
        "the job's guest is 'telco'",
    ] {
        assert!(
            refused.iter().any(|d| d.contains(want)),
            "{want}: {refused:?}"
        );
    }
    // The decision did not approve anything on telco: only telco decides for telco. (A
    // proposal sent after it is in, so the decision was handled.)
    to_telco(&proposal("sched-barrier", &spec_json, YEARLY));
    wait_for("the barrier proposal on telco", || {
        status(telco, "sched-barrier").is_some()
    });
    assert_eq!(
        status(telco, "sched-good"),
        Some(ScheduleStatus::PendingApproval)
    );
}
