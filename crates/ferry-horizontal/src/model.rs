//! Models: logistic, linear and softmax regression and a small multilayer perceptron, all as
//! one feed-forward network over a flat parameter vector (FedAvg averages flat vectors).

use crate::error::HflError;
use ferry_data::Dataset;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the model predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Task {
    /// Labels 0/1; the model outputs P(y = 1) through a sigmoid; loss: binary cross-entropy.
    Binary,
    /// Real labels; identity output; loss: half squared error.
    Regression,
    /// Labels 0..k-1; softmax output; loss: cross-entropy.
    Multiclass {
        /// Number of classes `k`.
        #[schemars(range(min = 2))]
        n_classes: usize,
    },
}

/// The model family.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelSpec {
    /// Binary logistic regression.
    Logistic,
    /// Linear regression.
    Linear,
    /// Multinomial (softmax) regression.
    Softmax {
        /// Number of classes (labels `0..n_classes`).
        #[schemars(range(min = 2))]
        n_classes: usize,
    },
    /// A multilayer perceptron with ReLU hidden layers (one or two are typical) and the output
    /// layer of `task`.
    Mlp {
        /// Units per hidden layer (at most 4 layers, each with at least one unit).
        #[schemars(length(max = 4), inner(range(min = 1)))]
        hidden: Vec<usize>,
        /// What the output layer predicts.
        task: Task,
    },
}

impl ModelSpec {
    pub fn task(&self) -> Task {
        match self {
            ModelSpec::Logistic => Task::Binary,
            ModelSpec::Linear => Task::Regression,
            ModelSpec::Softmax { n_classes } => Task::Multiclass {
                n_classes: *n_classes,
            },
            ModelSpec::Mlp { task, .. } => *task,
        }
    }

    pub fn hidden(&self) -> &[usize] {
        match self {
            ModelSpec::Mlp { hidden, .. } => hidden,
            _ => &[],
        }
    }

    pub fn validate(&self) -> Result<(), HflError> {
        if let Task::Multiclass { n_classes } = self.task()
            && n_classes < 2
        {
            return Err(HflError::Config(format!(
                "a multi-class model needs at least 2 classes, got {n_classes}"
            )));
        }
        if self.hidden().contains(&0) {
            return Err(HflError::Config(
                "MLP hidden layers must have at least one unit".into(),
            ));
        }
        if self.hidden().len() > 4 {
            return Err(HflError::Config(
                "this MLP supports at most 4 hidden layers".into(),
            ));
        }
        Ok(())
    }

    fn outputs(&self) -> usize {
        match self.task() {
            Task::Binary | Task::Regression => 1,
            Task::Multiclass { n_classes } => n_classes,
        }
    }
}

/// Layer sizes and where each layer's weights (row-major `out × in`) and biases sit in the
/// flat parameter vector.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    dims: Vec<usize>,
    offsets: Vec<usize>,
    total: usize,
}

impl Layout {
    pub(crate) fn new(spec: &ModelSpec, n_features: usize) -> Self {
        let mut dims = vec![n_features];
        dims.extend_from_slice(spec.hidden());
        dims.push(spec.outputs());
        let mut offsets = Vec::with_capacity(dims.len() - 1);
        let mut total = 0;
        for w in dims.windows(2) {
            offsets.push(total);
            total += w[0] * w[1] + w[1];
        }
        Layout {
            dims,
            offsets,
            total,
        }
    }

    fn layers(&self) -> usize {
        self.dims.len() - 1
    }
}

/// A trained or initial model: its family, the feature columns it reads (in order) and its
/// parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub spec: ModelSpec,
    pub feature_names: Vec<String>,
    pub params: Vec<f64>,
}

/// Serialised form; see [`Model::to_json`].
#[derive(Serialize, Deserialize)]
struct SavedModel {
    format: String,
    version: u32,
    spec: ModelSpec,
    feature_names: Vec<String>,
    params: Vec<f64>,
}

impl Model {
    /// Identifies the serialised format.
    pub const FORMAT: &'static str = "ferry-horizontal-model";
    /// Version of the serialised format; loading refuses other versions.
    pub const FORMAT_VERSION: u32 = 1;

    /// A new model. Models without hidden layers start at zero (their losses are convex, so
    /// the start does not matter and zero is reproducible everywhere); MLP weights are drawn
    /// Glorot-uniform from a ChaCha8 stream seeded by `seed`, biases start at zero.
    pub fn init(spec: ModelSpec, feature_names: Vec<String>, seed: u64) -> Result<Self, HflError> {
        spec.validate()?;
        if feature_names.is_empty() {
            return Err(HflError::Data("the data has no feature columns".into()));
        }
        let layout = Layout::new(&spec, feature_names.len());
        let mut params = vec![0.0; layout.total];
        if !spec.hidden().is_empty() {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            for l in 0..layout.layers() {
                let (fan_in, fan_out) = (layout.dims[l], layout.dims[l + 1]);
                let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
                let start = layout.offsets[l];
                for w in &mut params[start..start + fan_in * fan_out] {
                    *w = rng.random_range(-limit..limit);
                }
            }
        }
        Ok(Model {
            spec,
            feature_names,
            params,
        })
    }

    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    pub(crate) fn layout(&self) -> Layout {
        Layout::new(&self.spec, self.n_features())
    }

    /// Values per prediction: 1, or the number of classes.
    pub fn output_width(&self) -> usize {
        self.spec.outputs()
    }

    /// Serialises the model as JSON with its format name and version.
    pub fn to_json(&self) -> Result<String, HflError> {
        self.check()?;
        let saved = SavedModel {
            format: Self::FORMAT.into(),
            version: Self::FORMAT_VERSION,
            spec: self.spec.clone(),
            feature_names: self.feature_names.clone(),
            params: self.params.clone(),
        };
        serde_json::to_string(&saved).map_err(|e| HflError::Model(format!("cannot serialise: {e}")))
    }

    /// Loads a model written by [`Model::to_json`], checking format, version and shape.
    pub fn from_json(text: &str) -> Result<Self, HflError> {
        let saved: SavedModel = serde_json::from_str(text)
            .map_err(|e| HflError::Model(format!("not a horizontal FL model file: {e}")))?;
        if saved.format != Self::FORMAT {
            return Err(HflError::Model(format!(
                "format '{}' is not '{}'",
                saved.format,
                Self::FORMAT
            )));
        }
        if saved.version != Self::FORMAT_VERSION {
            return Err(HflError::Model(format!(
                "format version {} is not supported (this build reads version {}); retrain or convert the model",
                saved.version,
                Self::FORMAT_VERSION
            )));
        }
        let model = Model {
            spec: saved.spec,
            feature_names: saved.feature_names,
            params: saved.params,
        };
        model.check()?;
        Ok(model)
    }

    /// Checks the parameter vector matches the architecture and is finite.
    pub(crate) fn check(&self) -> Result<(), HflError> {
        self.spec.validate()?;
        if self.feature_names.is_empty() {
            return Err(HflError::Model("no feature names".into()));
        }
        let expected = self.layout().total;
        if self.params.len() != expected {
            return Err(HflError::Model(format!(
                "{} parameters, but the architecture needs {expected}",
                self.params.len()
            )));
        }
        if let Some(i) = self.params.iter().position(|p| !p.is_finite()) {
            return Err(HflError::Model(format!("parameter {i} is not finite")));
        }
        Ok(())
    }
}

/// Features and labels checked against a model: row-major, columns in the model's order.
#[derive(Clone, Debug)]
pub(crate) struct Prepared {
    pub(crate) x: Vec<f64>,
    pub(crate) y: Vec<f64>,
    pub(crate) n: usize,
    pub(crate) d: usize,
}

impl Prepared {
    pub(crate) fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.d..(i + 1) * self.d]
    }

    pub(crate) fn select(&self, rows: &[usize]) -> Prepared {
        let mut x = Vec::with_capacity(rows.len() * self.d);
        for &i in rows {
            x.extend_from_slice(self.row(i));
        }
        Prepared {
            x,
            y: rows.iter().map(|&i| self.y[i]).collect(),
            n: rows.len(),
            d: self.d,
        }
    }
}

/// The dataset's columns in `feature_names` order (by name when the order differs).
pub(crate) fn features_in_order(
    data: &Dataset,
    feature_names: &[String],
) -> Result<Vec<f64>, HflError> {
    let columns: Vec<usize> = if data.feature_names == feature_names {
        (0..feature_names.len()).collect()
    } else {
        feature_names
            .iter()
            .map(|name| {
                data.feature_names
                    .iter()
                    .position(|f| f == name)
                    .ok_or_else(|| {
                        HflError::Data(format!(
                            "the data has no feature column '{name}' (the model reads: {})",
                            feature_names.join(", ")
                        ))
                    })
            })
            .collect::<Result<_, _>>()?
    };
    let mut x = Vec::with_capacity(data.n_rows() * columns.len());
    for i in 0..data.n_rows() {
        let row = data.row(i);
        for &j in &columns {
            let v = row[j];
            if !v.is_finite() {
                return Err(HflError::Data(format!(
                    "row {} (id '{}'), feature '{}' is missing; impute missing values before horizontal FL",
                    i + 1,
                    data.ids[i],
                    data.feature_names[j]
                )));
            }
            x.push(v);
        }
    }
    Ok(x)
}

/// Checks labels fit the task.
pub(crate) fn check_labels(labels: &[f64], task: Task) -> Result<(), HflError> {
    for (i, &y) in labels.iter().enumerate() {
        let ok = match task {
            Task::Binary => y == 0.0 || y == 1.0,
            Task::Regression => y.is_finite(),
            Task::Multiclass { n_classes } => {
                y.fract() == 0.0 && y >= 0.0 && (y as usize) < n_classes
            }
        };
        if !ok {
            let expected = match task {
                Task::Binary => "0 or 1".to_string(),
                Task::Regression => "a finite number".to_string(),
                Task::Multiclass { n_classes } => format!("an integer class in 0..{n_classes}"),
            };
            return Err(HflError::Data(format!(
                "label of row {} is {y}, expected {expected}",
                i + 1
            )));
        }
    }
    Ok(())
}

pub(crate) fn prepare(
    data: &Dataset,
    feature_names: &[String],
    task: Task,
) -> Result<Prepared, HflError> {
    let labels = data.labels().ok_or_else(|| {
        HflError::Data(
            "this data has no label column; every horizontal FL client needs labels".into(),
        )
    })?;
    check_labels(labels, task)?;
    Ok(Prepared {
        x: features_in_order(data, feature_names)?,
        y: labels.to_vec(),
        n: data.n_rows(),
        d: feature_names.len(),
    })
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `log(1 + e^z)` without overflow.
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

fn softmax_in_place(z: &mut [f64]) {
    let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in z.iter_mut() {
        *v /= sum;
    }
}

/// Forward pass and back-propagation for one network, with reusable buffers.
pub(crate) struct Network<'a> {
    layout: Layout,
    task: Task,
    params: &'a [f64],
    /// Pre-activations per layer (index 0 unused: the input).
    z: Vec<Vec<f64>>,
    /// Activations per layer (index 0: the input).
    a: Vec<Vec<f64>>,
    delta: Vec<Vec<f64>>,
}

impl<'a> Network<'a> {
    pub(crate) fn new(model_spec: &ModelSpec, n_features: usize, params: &'a [f64]) -> Self {
        let layout = Layout::new(model_spec, n_features);
        let z: Vec<Vec<f64>> = layout.dims.iter().map(|&n| vec![0.0; n]).collect();
        Network {
            task: model_spec.task(),
            a: z.clone(),
            delta: z.clone(),
            z,
            layout,
            params,
        }
    }

    /// Runs the network on `x`; returns the output (probability, value or class probabilities).
    pub(crate) fn forward(&mut self, x: &[f64]) -> &[f64] {
        self.a[0].copy_from_slice(x);
        let last = self.layout.layers();
        for l in 0..last {
            let (n_in, n_out) = (self.layout.dims[l], self.layout.dims[l + 1]);
            let w = &self.params[self.layout.offsets[l]..];
            let (weights, bias) = (&w[..n_in * n_out], &w[n_in * n_out..n_in * n_out + n_out]);
            let (before, after) = self.a.split_at_mut(l + 1);
            let input = &before[l];
            let out = &mut after[0];
            for o in 0..n_out {
                let row = &weights[o * n_in..(o + 1) * n_in];
                let s: f64 = row.iter().zip(input.iter()).map(|(w, x)| w * x).sum();
                self.z[l + 1][o] = s + bias[o];
                out[o] = if l + 1 < last {
                    self.z[l + 1][o].max(0.0)
                } else {
                    self.z[l + 1][o]
                };
            }
        }
        let output = &mut self.a[last];
        match self.task {
            Task::Binary => output[0] = sigmoid(output[0]),
            Task::Regression => {}
            Task::Multiclass { .. } => softmax_in_place(output),
        }
        &self.a[last]
    }

    /// Loss of the last forward pass against label `y`.
    pub(crate) fn loss(&self, y: f64) -> f64 {
        let last = self.layout.layers();
        match self.task {
            // Computed from the logit so that confident mistakes stay finite.
            Task::Binary => {
                let z = self.z[last][0];
                softplus(z) - y * z
            }
            Task::Regression => 0.5 * (self.a[last][0] - y).powi(2),
            Task::Multiclass { .. } => -self.a[last][y as usize].max(1e-300).ln(),
        }
    }

    /// Adds the gradient of the loss of the last forward pass (label `y`) to `grad`.
    pub(crate) fn backward(&mut self, y: f64, grad: &mut [f64]) {
        let last = self.layout.layers();
        // Output delta: prediction minus target for all three output/loss pairs.
        for (o, d) in self.delta[last].iter_mut().enumerate() {
            let target = match self.task {
                Task::Multiclass { .. } => {
                    if o == y as usize {
                        1.0
                    } else {
                        0.0
                    }
                }
                _ => y,
            };
            *d = self.a[last][o] - target;
        }
        for l in (0..last).rev() {
            let (n_in, n_out) = (self.layout.dims[l], self.layout.dims[l + 1]);
            let off = self.layout.offsets[l];
            let weights = &self.params[off..off + n_in * n_out];
            {
                let g = &mut grad[off..off + n_in * n_out + n_out];
                let delta = &self.delta[l + 1];
                let input = &self.a[l];
                for o in 0..n_out {
                    let d = delta[o];
                    if d == 0.0 {
                        continue;
                    }
                    for (gw, x) in g[o * n_in..(o + 1) * n_in].iter_mut().zip(input) {
                        *gw += d * x;
                    }
                    g[n_in * n_out + o] += d;
                }
            }
            if l > 0 {
                let (lower, upper) = self.delta.split_at_mut(l + 1);
                let below = &mut lower[l];
                let delta = &upper[0];
                below.iter_mut().for_each(|b| *b = 0.0);
                for o in 0..n_out {
                    let d = delta[o];
                    if d == 0.0 {
                        continue;
                    }
                    for (b, w) in below.iter_mut().zip(&weights[o * n_in..(o + 1) * n_in]) {
                        *b += d * w;
                    }
                }
                for (b, z) in below.iter_mut().zip(&self.z[l]) {
                    if *z <= 0.0 {
                        *b = 0.0;
                    }
                }
            }
        }
    }
}

/// Predictions of `model` for every row of `data`: P(y = 1) for binary models, the value for
/// regression, `k` class probabilities per row (row-major) for multi-class models.
pub fn predict(model: &Model, data: &Dataset) -> Result<Vec<f64>, HflError> {
    model.check()?;
    let x = features_in_order(data, &model.feature_names)?;
    Ok(predict_rows(model, &x))
}

pub(crate) fn predict_rows(model: &Model, x: &[f64]) -> Vec<f64> {
    let d = model.n_features();
    let mut net = Network::new(&model.spec, d, &model.params);
    let mut out = Vec::with_capacity(x.len() / d * model.output_width());
    for row in x.chunks_exact(d) {
        out.extend_from_slice(net.forward(row));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(d: usize) -> Vec<String> {
        (0..d).map(|i| format!("x{i}")).collect()
    }

    /// Finite differences confirm back-propagation for every task and depth.
    #[test]
    fn gradients_match_finite_differences() {
        let specs = [
            ModelSpec::Logistic,
            ModelSpec::Linear,
            ModelSpec::Softmax { n_classes: 3 },
            ModelSpec::Mlp {
                hidden: vec![5],
                task: Task::Binary,
            },
            ModelSpec::Mlp {
                hidden: vec![4, 3],
                task: Task::Multiclass { n_classes: 3 },
            },
            ModelSpec::Mlp {
                hidden: vec![3],
                task: Task::Regression,
            },
        ];
        let x = [0.3, -1.2, 0.7, 2.0];
        for spec in specs {
            let mut model = Model::init(spec.clone(), names(4), 9).unwrap();
            // Non-zero parameters everywhere so every path is exercised.
            for (i, p) in model.params.iter_mut().enumerate() {
                *p += 0.05 * ((i as f64) * 1.7).sin();
            }
            let y = match spec.task() {
                Task::Multiclass { .. } => 2.0,
                Task::Binary => 1.0,
                Task::Regression => 0.4,
            };
            let mut grad = vec![0.0; model.params.len()];
            let mut net = Network::new(&model.spec, 4, &model.params);
            net.forward(&x);
            net.backward(y, &mut grad);
            let h = 1e-6;
            for i in 0..model.params.len() {
                let mut plus = model.params.clone();
                plus[i] += h;
                let mut minus = model.params.clone();
                minus[i] -= h;
                let mut np = Network::new(&model.spec, 4, &plus);
                np.forward(&x);
                let mut nm = Network::new(&model.spec, 4, &minus);
                nm.forward(&x);
                let numeric = (np.loss(y) - nm.loss(y)) / (2.0 * h);
                assert!(
                    (numeric - grad[i]).abs() < 1e-6,
                    "{spec:?} parameter {i}: numeric {numeric}, backprop {}",
                    grad[i]
                );
            }
        }
    }

    #[test]
    fn logistic_prediction_by_hand() {
        let mut model = Model::init(ModelSpec::Logistic, names(2), 0).unwrap();
        model.params = vec![0.5, -1.0, 0.25]; // w0, w1, b
        let data = Dataset::from_parts(
            vec!["a".into()],
            vec!["x1".into(), "x0".into()], // columns swapped: matched by name
            vec![2.0, 1.0],
            None,
            None,
        )
        .unwrap();
        let p = predict(&model, &data).unwrap();
        // z = 0.5·1 − 1·2 + 0.25 = −1.25
        assert!((p[0] - 1.0 / (1.0 + 1.25f64.exp())).abs() < 1e-15);
    }

    #[test]
    fn serialisation_round_trips_and_checks_version_and_shape() {
        let model = Model::init(
            ModelSpec::Mlp {
                hidden: vec![3],
                task: Task::Binary,
            },
            names(2),
            4,
        )
        .unwrap();
        let json = model.to_json().unwrap();
        assert_eq!(Model::from_json(&json).unwrap(), model);
        let newer = json.replace("\"version\":1", "\"version\":2");
        let err = Model::from_json(&newer).unwrap_err().to_string();
        assert!(err.contains("version 2"), "{err}");
        let mut short = model.clone();
        short.params.pop();
        assert!(short.to_json().is_err());
        let shortened = json.replacen(",0.0]", "]", 1);
        let err = Model::from_json(&shortened).unwrap_err().to_string();
        assert!(err.contains("parameters"), "{err}");
        assert!(Model::from_json("{}").is_err());
    }

    #[test]
    fn missing_features_and_bad_labels_are_named() {
        let data = Dataset::from_parts(
            vec!["r1".into(), "r2".into()],
            vec!["x0".into(), "x1".into()],
            vec![1.0, 2.0, f64::NAN, 3.0],
            Some("y".into()),
            Some(vec![0.0, 2.0]),
        )
        .unwrap();
        let err = prepare(&data, &names(2), Task::Binary)
            .unwrap_err()
            .to_string();
        assert!(err.contains("label of row 2"), "{err}");
        let err = prepare(&data, &names(2), Task::Multiclass { n_classes: 3 })
            .unwrap_err()
            .to_string();
        assert!(err.contains("'r2'") && err.contains("'x0'"), "{err}");
        let err = features_in_order(&data, &["x9".to_string()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("'x9'"), "{err}");
    }
}
