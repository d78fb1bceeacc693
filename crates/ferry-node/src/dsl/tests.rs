use super::*;

const GOOD: &str = r#"
name: credit
parties: {guest: bank, hosts: [telco]}
tasks:
  - name: read
    component: reader
    party_params: {bank: {dataset: bank_data}, telco: {dataset: telco_data}}
  - {name: intersect, component: psi, inputs: {data: read}}
  - name: train
    component: hetero_secureboost
    inputs: {train: intersect}
    params: {num_trees: 3, max_depth: 2, model_name: risk}
  - {name: score, component: predict, inputs: {model: train, data: intersect.data}}
  - {name: eval, component: evaluation, inputs: {data: score}}
"#;

fn errors_of(text: &str) -> Vec<String> {
    match JobSpec::parse(text).and_then(|s| s.validate().map(|_| s)) {
        Ok(_) => vec![],
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn a_good_spec_validates_and_orders_its_tasks() {
    let spec = JobSpec::parse(GOOD).unwrap();
    spec.validate().unwrap();
    assert_eq!(
        spec.topological_order().unwrap(),
        ["read", "intersect", "train", "score", "eval"]
    );
    let roster = spec.roster().unwrap();
    assert_eq!(roster.hosts().len(), 1);
    let train = spec.task("train").unwrap();
    let p = spec.params_for(train, "telco", Role::Host);
    assert_eq!(p["num_trees"], 3);
    // JSON is accepted too.
    let json = spec.to_json();
    assert_eq!(JobSpec::parse(&json).unwrap(), spec);
}

#[test]
fn order_follows_inputs_not_file_order() {
    let text = GOOD.replace(
        "  - {name: intersect, component: psi, inputs: {data: read}}\n",
        "",
    ) + "  - {name: intersect, component: psi, inputs: {data: read}}\n";
    let spec = JobSpec::parse(&text).unwrap();
    spec.validate().unwrap();
    let order = spec.topological_order().unwrap();
    let pos = |n: &str| order.iter().position(|x| x == n).unwrap();
    assert!(pos("intersect") < pos("train"));
}

#[test]
fn unknown_component_and_parameter_are_named_with_hints() {
    let e = errors_of(&GOOD.replace(
        "component: hetero_secureboost",
        "component: hetero_secureboots",
    ));
    assert!(e.iter().any(|l| l.contains("tasks[2].component: unknown component 'hetero_secureboots' (did you mean 'hetero_secureboost'?)")), "{e:?}");
    let e = errors_of(&GOOD.replace("num_trees: 3", "num_tree: 3"));
    assert!(e.iter().any(|l| l.contains("tasks[2].params.num_tree: hetero_secureboost: unknown parameter 'num_tree' (did you mean 'num_trees'?)")), "{e:?}");
    let e = errors_of(&GOOD.replace("max_depth: 2", "max_depth: deep"));
    assert!(
        e.iter()
            .any(|l| l.contains("tasks[2].params.max_depth: ")
                && l.contains("parameter 'max_depth'")),
        "{e:?}"
    );
}

#[test]
fn cycles_missing_inputs_and_unknown_tasks_are_reported() {
    let cyclic = r#"
parties: {guest: bank, hosts: [telco]}
tasks:
  - {name: a, component: psi, inputs: {data: b}}
  - {name: b, component: psi, inputs: {data: a}}
"#;
    let e = errors_of(cyclic);
    assert!(
        e.iter().any(|l| l.contains("cycle through tasks a, b")),
        "{e:?}"
    );

    let e = errors_of(&GOOD.replace("inputs: {data: read}", "inputs: {}"));
    assert!(
        e.iter()
            .any(|l| l.contains("tasks[1].inputs.data: psi needs input 'data'")),
        "{e:?}"
    );

    let e = errors_of(&GOOD.replace("inputs: {train: intersect}", "inputs: {train: intersekt}"));
    assert!(
        e.iter().any(|l| l.contains(
            "tasks[2].inputs.train: no task named 'intersekt' (did you mean 'intersect'?)"
        )),
        "{e:?}"
    );

    let e = errors_of(&GOOD.replace("data: intersect.data", "data: intersect.model"));
    assert!(e.iter().any(|l| l.contains("task 'intersect' has no output 'intersect.model' (outputs: data)")), "{e:?}");

    let e = errors_of(&GOOD.replace(
        "inputs: {train: intersect}",
        "inputs: {train: intersect, extra: read}",
    ));
    assert!(
        e.iter()
            .any(|l| l.contains("hetero_secureboost has no input 'extra'")),
        "{e:?}"
    );
}

#[test]
fn roles_and_parties_must_be_in_the_job() {
    let e = errors_of(&GOOD.replace(
        "params: {num_trees: 3, max_depth: 2, model_name: risk}",
        "role_params: {arbiter: {num_trees: 3}}",
    ));
    assert!(
        e.iter()
            .any(|l| l.contains("tasks[2].role_params.arbiter: the job has no arbiter")),
        "{e:?}"
    );
    let e = errors_of(&GOOD.replace(
        "telco: {dataset: telco_data}",
        "telko: {dataset: telco_data}",
    ));
    assert!(
        e.iter().any(|l| l.contains(
            "party_params.telko: party 'telko' is not in the job (did you mean 'telco'?)"
        )),
        "{e:?}"
    );
    assert!(
        e.iter().any(|l| l.contains("every host needs 'dataset'")),
        "{e:?}"
    );
    let e = errors_of(&GOOD.replace("hosts: [telco]", "hosts: []"));
    assert!(
        e.iter().any(|l| l.contains("needs at least one host")),
        "{e:?}"
    );
    let e = errors_of(&GOOD.replace("hosts: [telco]", "hosts: [bank]"));
    assert!(
        e.iter().any(|l| l.contains("'bank' is listed twice")),
        "{e:?}"
    );
}

#[test]
fn syntax_errors_carry_the_line_and_unknown_top_level_keys_are_refused() {
    let e = JobSpec::parse("parties: {guest: bank\ntasks: [").unwrap_err();
    assert!(e.to_string().contains("line"), "{e}");
    let e = JobSpec::parse("parties: {guest: bank}\ntasks: []\ntimeout: 5\n").unwrap_err();
    assert!(e.to_string().contains("unknown field `timeout`"), "{e}");
    let e = errors_of("parties: {guest: bank, hosts: [telco]}\ntasks: []\n");
    assert!(e.iter().any(|l| l.contains("at least one task")), "{e:?}");
}

#[test]
fn predict_may_use_a_stored_model_instead_of_an_input() {
    let text = r#"
parties: {guest: bank, hosts: [telco]}
tasks:
  - {name: read, component: reader, party_params: {bank: {dataset: a}, telco: {dataset: b}}}
  - {name: score, component: predict, inputs: {data: read}, params: {model: risk, version: 2}}
"#;
    assert_eq!(errors_of(text), Vec::<String>::new());
    let e = errors_of(&text.replace(", params: {model: risk, version: 2}", ""));
    assert!(
        e.iter().any(|l| l.contains("predict needs input 'model'")),
        "{e:?}"
    );
}

#[test]
fn reader_column_selection_is_checked() {
    let with = |sel: &str| {
        GOOD.replace(
            "bank: {dataset: bank_data}",
            &format!("bank: {{dataset: bank_data, {sel}}}"),
        )
    };
    assert!(errors_of(&with("exclude_columns: [segment]")).is_empty());
    assert!(errors_of(&with("columns: [age, income]")).is_empty());
    let e = errors_of(&with("columns: [age], exclude_columns: [segment]"));
    assert!(e.iter().any(|l| l.contains("not both")), "{e:?}");
    let e = errors_of(&with("columns: []"));
    assert!(
        e.iter()
            .any(|l| l.contains("'columns' must be a non-empty list")),
        "{e:?}"
    );
    let e = errors_of(&with("exclude_columns: segment"));
    assert!(
        e.iter()
            .any(|l| l.contains("parameter 'exclude_columns'") && l.contains("sequence")),
        "{e:?}"
    );
    let e = errors_of(&with("exclude_column: [segment]"));
    assert!(
        e.iter()
            .any(|l| l.contains("did you mean 'exclude_columns'")),
        "{e:?}"
    );
}

#[test]
fn data_split_outputs_resolve_and_its_parameters_are_checked() {
    let split = GOOD
        .replace(
            "  - name: train\n",
            "  - {name: split, component: data_split, inputs: {data: intersect}, params: {test_fraction: 0.2}}\n  - name: train\n",
        )
        .replace("inputs: {train: intersect}", "inputs: {train: split.train}")
        .replace("data: intersect.data}", "data: split.test}");
    assert!(errors_of(&split).is_empty(), "{:?}", errors_of(&split));
    let spec = JobSpec::parse(&split).unwrap();
    let order = spec.topological_order().unwrap();
    let pos = |n: &str| order.iter().position(|x| x == n).unwrap();
    assert!(pos("split") < pos("train") && pos("split") < pos("score"));

    let e = errors_of(&split.replace("test_fraction: 0.2", "test_fraction: 1.5"));
    assert!(
        e.iter()
            .any(|l| l.contains("'test_fraction' must be a number between 0 and 1")),
        "{e:?}"
    );
    let e = errors_of(&split.replace("test_fraction: 0.2", "seed: -1"));
    assert!(e.iter().any(|l| l.contains("'seed'")), "{e:?}");
    let e = errors_of(&split.replace("split.train}", "split.validation}"));
    assert!(!e.is_empty(), "an unknown output is refused");
}

/// The console marks the field a problem is about, so a parameter's error names the parameter
/// at the level (everyone, role, party) that set it, and a missing one where it belongs.
#[test]
fn parameter_errors_are_located_at_the_parameter_and_the_level_that_set_it() {
    let e = errors_of(&GOOD.replace("max_depth: 2", "max_depth: 99"));
    assert!(
        e.iter()
            .any(|l| l.starts_with("tasks[2].params.max_depth: hetero_secureboost: ")),
        "{e:?}"
    );
    let e = errors_of(&GOOD.replace(
        "params: {num_trees: 3, max_depth: 2, model_name: risk}",
        "role_params: {host: {max_depth: 0}}",
    ));
    assert!(
        e.iter()
            .any(|l| l.starts_with("tasks[2].role_params.host.max_depth: ")),
        "{e:?}"
    );
    let e = errors_of(&GOOD.replace(
        "telco: {dataset: telco_data}",
        "telco: {dataset: telco_data, colums: [a]}",
    ));
    assert!(
        e.iter()
            .any(|l| l.starts_with("tasks[0].party_params.telco.colums: ")),
        "{e:?}"
    );
    // A required parameter that is not set is located where this party's values are.
    let e = errors_of(&GOOD.replace("telco: {dataset: telco_data}", "telco: {}"));
    assert!(
        e.iter()
            .any(|l| l.starts_with("tasks[0].party_params.telco.dataset: ")),
        "{e:?}"
    );
}
