//! Job templates shipped with the binary: whole workflows a user starts from (`ferry
//! template list|show`, `ferry demo --template NAME`, `GET /api/v1/templates`).
//!
//! A template is a job spec with placeholders for what differs between deployments: the
//! guest, the hosts, each party's dataset and the homomorphic scheme.

use std::fmt::Write as _;

/// One shipped template.
pub struct Template {
    pub name: &'static str,
    pub title_en: &'static str,
    pub title_zh: &'static str,
    pub description: &'static str,
    /// The job spec with `{{guest}}`, `{{hosts}}`, `{{datasets}}` and `{{scheme}}`.
    pub spec: &'static str,
}

pub static TEMPLATES: &[Template] = &[
    Template {
        name: "scorecard",
        title_en: "Joint risk control: credit scorecard",
        title_zh: "联合风控：评分卡",
        description: "PSI -> split -> binning with WOE/IV (host WOE under HE) -> feature selection -> WOE transform -> hetero LR -> scorecard points -> KS table and score stability",
        spec: include_str!("../templates/scorecard.yaml"),
    },
    Template {
        name: "marketing",
        title_en: "Joint marketing: response model with lift",
        title_zh: "联合营销：响应模型与提升度",
        description: "PSI -> split -> SecureBoost -> predict -> evaluation with lift of the top decile",
        spec: include_str!("../templates/marketing.yaml"),
    },
];

pub fn find(name: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.name == name)
}

/// What fills a template's placeholders.
pub struct Fill<'a> {
    pub guest: &'a str,
    pub hosts: &'a [&'a str],
    /// Each party's dataset, guest and hosts.
    pub datasets: &'a [(&'a str, &'a str)],
    /// `paillier` or `ou`.
    pub scheme: &'a str,
}

#[derive(Debug, thiserror::Error)]
#[error("template '{template}': {reason}")]
pub struct TemplateError {
    pub template: String,
    pub reason: String,
}

impl Template {
    /// The job spec for `fill`, validated as a job spec (names are checked, so a value cannot
    /// inject YAML).
    pub fn render(&self, fill: &Fill<'_>) -> Result<String, TemplateError> {
        let err = |reason: String| TemplateError {
            template: self.name.into(),
            reason,
        };
        let mut parties: Vec<&str> = vec![fill.guest];
        parties.extend(fill.hosts);
        for p in parties.iter().chain(fill.datasets.iter().map(|(_, d)| d)) {
            ferry_store::validate_name("name", p).map_err(|e| err(e.to_string()))?;
        }
        if fill.hosts.is_empty() {
            return Err(err("needs at least one host".into()));
        }
        if !matches!(fill.scheme, "paillier" | "ou") {
            return Err(err(format!(
                "scheme '{}' is not paillier or ou",
                fill.scheme
            )));
        }
        let mut datasets = String::new();
        for p in &parties {
            let d = fill
                .datasets
                .iter()
                .find(|(party, _)| party == p)
                .ok_or_else(|| err(format!("no dataset given for '{p}'")))?;
            if !datasets.is_empty() {
                datasets.push_str(", ");
            }
            let _ = write!(datasets, "{p}: {{dataset: {}}}", d.1);
        }
        let text = self
            .spec
            .replace("{{guest}}", fill.guest)
            .replace("{{hosts}}", &fill.hosts.join(", "))
            .replace("{{datasets}}", &datasets)
            .replace("{{scheme}}", fill.scheme);
        let spec = crate::dsl::JobSpec::parse(&text).map_err(|e| err(e.to_string()))?;
        spec.validate().map_err(|e| err(e.to_string()))?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_to_a_valid_job_for_two_and_three_parties() {
        for t in TEMPLATES {
            for hosts in [&["telco"][..], &["telco", "insurer"][..]] {
                let mut datasets = vec![("bank", "bank_data")];
                datasets.extend(hosts.iter().map(|h| (*h, "their_data")));
                let text = t
                    .render(&Fill {
                        guest: "bank",
                        hosts,
                        datasets: &datasets,
                        scheme: "paillier",
                    })
                    .unwrap_or_else(|e| panic!("{e}"));
                assert!(!text.contains("{{"), "{text}");
                let spec = crate::dsl::JobSpec::parse(&text).unwrap();
                assert_eq!(spec.roster().unwrap().hosts().len(), hosts.len());
            }
        }
    }

    #[test]
    fn a_value_that_is_not_a_name_is_refused() {
        let t = find("scorecard").unwrap();
        let e = t
            .render(&Fill {
                guest: "bank",
                hosts: &["telco"],
                datasets: &[("bank", "a}, evil: {x"), ("telco", "b")],
                scheme: "paillier",
            })
            .unwrap_err();
        assert!(e.to_string().contains("scorecard"), "{e}");
        let e = t
            .render(&Fill {
                guest: "bank",
                hosts: &["telco"],
                datasets: &[("bank", "a")],
                scheme: "paillier",
            })
            .unwrap_err();
        assert!(e.to_string().contains("'telco'"), "{e}");
    }
}
