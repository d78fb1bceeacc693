//! `ferry bench load` on a few jobs: every job succeeds across the three node processes and
//! the report has the throughput and each node's memory figures.

mod common;

use common::*;

#[test]
fn the_load_benchmark_runs_jobs_across_three_node_processes_and_reports_memory() {
    let out = ok(ferry().args([
        "bench",
        "load",
        "--jobs",
        "6",
        "--concurrency",
        "3",
        "--rows",
        "50",
        "--json",
    ]));
    let v = json_of(out);
    assert_eq!(v["jobs"], 6);
    assert_eq!(v["failed"], 0, "{v}");
    assert!(v["jobs_per_minute"].as_f64().unwrap() > 0.0, "{v}");
    let nodes = v["nodes"].as_array().unwrap();
    let parties: Vec<&str> = nodes.iter().map(|n| n["party"].as_str().unwrap()).collect();
    assert_eq!(parties, ["bank", "telco", "insurer"]);
    for n in nodes {
        let peak = n["peak_rss_mib"].as_f64().unwrap();
        let end = n["rss_at_end_mib"].as_f64().unwrap();
        assert!(peak > 1.0 && end > 1.0 && peak >= end, "{n}");
    }
    assert!(v["machine"]["cores"].as_u64().unwrap() >= 1);
}
