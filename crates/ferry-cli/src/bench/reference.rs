//! Figures the benchmarks did not measure: other systems' times and Ferry's own earlier runs,
//! each with its source, date and machine.
//!
//! They are printed in a block of their own, after everything measured, and no ratio is ever
//! computed from them: a ratio to a figure from another run (often another machine, with or
//! without AVX-512 IFMA) says nothing reliable about this one. In JSON they sit under
//! `reference`, never beside the measured fields.

use serde::Serialize;
use serde_json::{Value, json};

/// Heading of the block of figures not measured in the run.
pub const HEADING: &str =
    "published / earlier figures (not measured in this run, so no ratio is computed from them):";

/// One figure from elsewhere.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reference {
    /// The system and its settings, e.g. `FATE 2.2 SecureBoost, Paillier-1024`.
    pub system: &'static str,
    /// What was run, e.g. `PSI 1e5 × 1e5, two parties`.
    pub workload: &'static str,
    pub seconds: f64,
    /// A quality figure reported with the time, e.g. `("AUC", 0.7798)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<Metric>,
    /// Where the figure was published or recorded.
    pub source: &'static str,
    /// When it was measured or recorded (as precisely as the source says).
    pub date: &'static str,
    /// The machine it was measured on (as precisely as the source says).
    pub machine: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Metric {
    pub name: &'static str,
    pub value: f64,
}

const fn metric(name: &'static str, value: f64) -> Option<Metric> {
    Some(Metric { name, value })
}

// Provenance of the figures. The peers' figures were quoted in the issues that set the
// benchmarks' targets and first recorded in the repository by commit 5f9ae18 (2026-11-21),
// the README said on the development machine; the issues' numbers are not recorded here.
const PEER_SOURCE: &str = "Ferry issue that set this target, quoted in commit 5f9ae18";
const PEER_DATE: &str = "2026-11 (recorded 2026-11-21)";
const DEV_MACHINE: &str =
    "2-core AMD EPYC with AVX-512 IFMA (the development machine, per the README)";
const README_SOURCE: &str = "Ferry README benchmark table, commit 6eec9c3";
const README_DATE: &str = "recorded 2026-11-22";
const ISSUE_11_SOURCE: &str = "Ferry issue 11, item 10";
const ISSUE_11_DATE: &str = "not stated in the issue";
const NO_IFMA_MACHINE: &str = "a machine without AVX-512 IFMA (model and cores not stated)";

/// Two-party ECDH-PSI on 1e5 and 1e6 ids per party.
pub fn psi(parties: usize) -> Vec<Reference> {
    if parties != 2 {
        return Vec::new();
    }
    let peer = |system, workload, seconds| Reference {
        system,
        workload,
        seconds,
        metric: None,
        source: PEER_SOURCE,
        date: PEER_DATE,
        machine: DEV_MACHINE,
    };
    vec![
        peer("openmined-psi 2.0.6", "PSI 1e5 × 1e5, two parties", 31.5),
        peer("openmined-psi 2.0.6", "PSI 1e6 × 1e6, two parties", 300.7),
        peer(
            "FATE 2.2 ECDH-PSI, curve25519",
            "PSI 1e5 × 1e5, two parties",
            19.4,
        ),
        peer(
            "FATE 2.2 ECDH-PSI, curve25519",
            "PSI 1e6 × 1e6, two parties",
            204.0,
        ),
        Reference {
            system: "Ferry (earlier run)",
            workload: "PSI 1e5 × 1e5, two processes",
            seconds: 6.0,
            metric: None,
            source: README_SOURCE,
            date: README_DATE,
            machine: DEV_MACHINE,
        },
        Reference {
            system: "Ferry (earlier run)",
            workload: "PSI 1e5 × 1e5, two processes",
            seconds: 11.6,
            metric: None,
            source: ISSUE_11_SOURCE,
            date: ISSUE_11_DATE,
            machine: NO_IFMA_MACHINE,
        },
    ]
}

/// SecureBoost on default_credit, 10 trees of depth 3 (the configuration the figures are for).
pub fn secureboost(dataset: &str, trees: usize, depth: usize) -> Vec<Reference> {
    if dataset != "default_credit" || trees != 10 || depth != 3 {
        return Vec::new();
    }
    const WORKLOAD: &str = "default_credit, 10 trees, depth 3";
    vec![
        Reference {
            system: "FATE 2.2 SecureBoost, Paillier-1024",
            workload: WORKLOAD,
            seconds: 668.7,
            metric: metric("AUC", 0.7798),
            source: PEER_SOURCE,
            date: PEER_DATE,
            machine: DEV_MACHINE,
        },
        Reference {
            system: "XGBoost 3.2, pooled data, 1 thread",
            workload: WORKLOAD,
            seconds: 0.078,
            metric: metric("AUC", 0.7788),
            source: PEER_SOURCE,
            date: PEER_DATE,
            machine: DEV_MACHINE,
        },
        Reference {
            system: "Ferry (earlier run), Paillier-2048",
            workload: WORKLOAD,
            seconds: 10.8,
            metric: metric("AUC", 0.7817),
            source: README_SOURCE,
            date: README_DATE,
            machine: DEV_MACHINE,
        },
        Reference {
            system: "Ferry (earlier run), Paillier-2048",
            workload: WORKLOAD,
            seconds: 46.2,
            metric: None,
            source: ISSUE_11_SOURCE,
            date: ISSUE_11_DATE,
            machine: NO_IFMA_MACHINE,
        },
    ]
}

/// Vertical logistic regression on default_credit, 3 epochs of batch 5000.
pub fn hetero_lr(dataset: &str, epochs: usize, batch: usize) -> Vec<Reference> {
    if dataset != "default_credit" || epochs != 3 || batch != 5000 {
        return Vec::new();
    }
    const WORKLOAD: &str = "default_credit, 3 epochs, batch 5000";
    let peer = |system, seconds, metric| Reference {
        system,
        workload: WORKLOAD,
        seconds,
        metric,
        source: PEER_SOURCE,
        date: PEER_DATE,
        machine: DEV_MACHINE,
    };
    vec![
        peer(
            "FATE 2.2 coordinated hetero LR, Paillier-1024",
            98.9,
            metric("AUC", 0.7048),
        ),
        peer("FATE 2.2 SSHE-LR", 214.8, None),
        peer("scikit-learn, pooled data", 0.24, metric("AUC", 0.7242)),
        Reference {
            system: "Ferry (earlier run), Paillier-2048",
            workload: WORKLOAD,
            seconds: 2.3,
            metric: metric("AUC", 0.7049),
            source: README_SOURCE,
            date: README_DATE,
            machine: DEV_MACHINE,
        },
    ]
}

impl Reference {
    /// One line: the figure, then its source, date and machine.
    pub fn render(&self) -> String {
        let mut figure = format_seconds(self.seconds);
        if let Some(m) = self.metric {
            figure.push_str(&format!(", {} {}", m.name, m.value));
        }
        format!(
            "  {} — {}: {figure}  [source: {}; date: {}; machine: {}]",
            self.system, self.workload, self.source, self.date, self.machine
        )
    }
}

fn format_seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{s} s")
    } else {
        format!("{s:.1} s")
    }
}

/// The block printed after a report, or nothing when there are no figures.
pub fn render(refs: &[Reference]) -> String {
    if refs.is_empty() {
        return String::new();
    }
    let mut s = String::from(HEADING);
    for r in refs {
        s.push('\n');
        s.push_str(&r.render());
    }
    s.push('\n');
    s
}

/// The `reference` object of a JSON report.
pub fn json(refs: &[Reference]) -> Value {
    json!({
        "note": "not measured in this run; never compare as a same-machine figure",
        "figures": refs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Reference> {
        let mut v = psi(2);
        v.extend(secureboost("default_credit", 10, 3));
        v.extend(hetero_lr("default_credit", 3, 5000));
        v
    }

    #[test]
    fn every_reference_line_names_source_date_and_machine() {
        for r in all() {
            let line = r.render();
            assert!(!r.source.is_empty() && !r.date.is_empty() && !r.machine.is_empty());
            for part in [r.source, r.date, r.machine] {
                assert!(line.contains(part), "{line}");
            }
            assert!(
                line.contains("source:") && line.contains("machine:"),
                "{line}"
            );
            assert!(!line.contains('×') || r.workload.contains('×'), "{line}");
        }
    }

    #[test]
    fn references_only_for_the_workload_they_describe() {
        assert!(psi(3).is_empty());
        assert!(secureboost("breast", 10, 3).is_empty());
        assert!(secureboost("default_credit", 20, 5).is_empty());
        assert!(hetero_lr("default_credit", 5, 5000).is_empty());
        assert_eq!(render(&[]), "");
    }

    #[test]
    fn json_keeps_provenance_with_each_figure() {
        let v = json(&psi(2));
        for f in v["figures"].as_array().unwrap() {
            for k in ["source", "date", "machine", "seconds", "system", "workload"] {
                assert!(f.get(k).is_some(), "{k} missing in {f}");
            }
        }
    }
}
