//! Client-level differential privacy: clipping, Gaussian noise, a staged noise schedule and a
//! Rényi-DP accountant for the (Poisson-subsampled) Gaussian mechanism.

use crate::error::HflError;
use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Differential privacy settings.
///
/// Unknown fields are refused: a misspelt key would otherwise be dropped silently, and
/// [`DpConfig::noise_seed`], which no job may set, must fail loudly when a spec tries to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DpConfig {
    /// `S`: each client's contribution (its weighted update) is clipped to this L2 norm.
    #[schemars(extend("exclusiveMinimum" = 0.0))]
    pub clip_norm: f64,
    /// Noise multiplier `σ` per round: the summed contributions get Gaussian noise of standard
    /// deviation `σ·S` per coordinate.
    pub noise: NoiseSchedule,
    /// `δ` of the reported `(ε, δ)` guarantee (typically below 1 / number of clients), in
    /// (0, 1).
    #[schemars(extend("exclusiveMinimum" = 0.0, "exclusiveMaximum" = 1.0))]
    pub delta: f64,
    /// Training stops before the round that would take `ε` above this budget.
    #[schemars(extend("exclusiveMinimum" = 0.0))]
    pub epsilon_budget: Option<f64>,
    /// Seeds the noise for reproducible tests. `None` (production): fresh operating-system
    /// entropy, as noise from a known seed protects nothing.
    ///
    /// In-process tests only: a seed in the job parameters would let every party regenerate
    /// and subtract the noise. It is therefore neither serialised nor deserialised (a job spec
    /// that names it is refused as an unknown parameter) and not part of the parameter
    /// fingerprint; set it in code, e.g. with [`DpConfig::with_noise_seed`].
    #[serde(skip)]
    #[schemars(skip)]
    pub noise_seed: Option<u64>,
}

impl DpConfig {
    /// The same settings with seeded noise, for reproducible in-process tests (see
    /// [`DpConfig::noise_seed`]: never for a real job).
    pub fn with_noise_seed(self, seed: u64) -> Self {
        DpConfig {
            noise_seed: Some(seed),
            ..self
        }
    }
}

impl DpConfig {
    pub(crate) fn validate(&self) -> Result<(), HflError> {
        if !(self.clip_norm.is_finite() && self.clip_norm > 0.0) {
            return Err(HflError::Config(format!(
                "DP clip norm {} must be positive",
                self.clip_norm
            )));
        }
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return Err(HflError::Config(format!(
                "DP delta {} must be in (0, 1)",
                self.delta
            )));
        }
        if let Some(b) = self.epsilon_budget
            && b.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
        {
            return Err(HflError::Config(format!(
                "DP epsilon budget {b} must be positive"
            )));
        }
        self.noise.validate()
    }
}

/// Where the Gaussian noise is added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoisePlacement {
    /// No secure aggregation: the server sees every client's update and adds the noise to the
    /// sum. The guarantee holds against the clients and outsiders, not against the server.
    Central,
    /// Secure aggregation: each participant adds a share of the noise to its own update, so
    /// every sum the server can obtain is already noised. The guarantee also holds against
    /// the server while fewer clients than the secure-aggregation threshold collude with it.
    Distributed,
}

/// A value a client sends in the clear, outside the DP guarantee (which covers the update
/// vectors, given these values).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearStatistic {
    /// Stable identifier, e.g. `sample_count`.
    pub name: String,
    /// What the value is.
    pub description: String,
    /// Who receives it.
    pub recipients: String,
    /// When it is sent.
    pub when: String,
}

/// How a DP job was accounted and what it disclosed outside the guarantee: the material for
/// the job's privacy report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrivacyReport {
    /// `ε` spent by the rounds that ran; `None` when there is no finite guarantee (zero noise).
    pub epsilon: Option<f64>,
    pub delta: f64,
    /// `S`, the L2 bound of each client's contribution.
    pub clip_norm: f64,
    pub noise: NoisePlacement,
    /// The client sampling rate each round was charged at: the selection fraction when the
    /// Poisson sample stays secret, otherwise 1.
    pub accounted_sampling_rate: f64,
    /// Whether the accountant applied privacy amplification by subsampling.
    pub amplification: bool,
    /// Why (not), in words.
    pub amplification_reason: String,
    /// Per-client values sent in the clear.
    pub cleartext: Vec<ClearStatistic>,
}

/// One stage of the noise schedule: from round `from_round` (1-based) on, use this multiplier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NoiseStage {
    /// First round (1-based) of the stage; the first stage starts at 1, later ones at
    /// increasing rounds.
    #[schemars(range(min = 1))]
    pub from_round: usize,
    /// `σ`, zero or positive.
    #[schemars(range(min = 0.0))]
    pub noise_multiplier: f64,
}

/// Noise multipliers by training stage, e.g. more noise early (large, informative updates)
/// and less once the model has settled, or the reverse. The stage in force at round `r` is
/// the last one with `from_round ≤ r`; the first stage must start at round 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NoiseSchedule {
    /// The stages, by increasing `from_round`.
    #[schemars(length(min = 1))]
    pub stages: Vec<NoiseStage>,
}

impl NoiseSchedule {
    pub fn constant(noise_multiplier: f64) -> Self {
        NoiseSchedule {
            stages: vec![NoiseStage {
                from_round: 1,
                noise_multiplier,
            }],
        }
    }

    pub fn multiplier_at(&self, round: usize) -> f64 {
        self.stages
            .iter()
            .rev()
            .find(|s| s.from_round <= round)
            .map_or(0.0, |s| s.noise_multiplier)
    }

    fn validate(&self) -> Result<(), HflError> {
        if self.stages.first().map(|s| s.from_round) != Some(1) {
            return Err(HflError::Config(
                "the noise schedule's first stage must start at round 1".into(),
            ));
        }
        if self
            .stages
            .windows(2)
            .any(|w| w[1].from_round <= w[0].from_round)
        {
            return Err(HflError::Config(
                "noise stages must start at increasing rounds".into(),
            ));
        }
        if let Some(s) = self
            .stages
            .iter()
            .find(|s| !(s.noise_multiplier.is_finite() && s.noise_multiplier >= 0.0))
        {
            return Err(HflError::Config(format!(
                "noise multiplier {} (from round {}) must be zero or positive",
                s.noise_multiplier, s.from_round
            )));
        }
        Ok(())
    }
}

/// Rényi orders the accountant tracks. Fractional orders are used only without subsampling
/// (where the Gaussian mechanism's RDP `α/(2σ²)` holds for every real `α > 1`); the
/// subsampled bound below is evaluated at the integer orders.
pub const RDP_ORDERS: [f64; 41] = [
    1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0,
    14.0, 15.0, 16.0, 18.0, 20.0, 22.0, 24.0, 28.0, 32.0, 36.0, 40.0, 48.0, 56.0, 64.0, 80.0, 96.0,
    112.0, 128.0, 160.0, 192.0, 224.0, 256.0, 512.0,
];

/// RDP of one application of the Gaussian mechanism with noise multiplier `sigma`
/// (sensitivity 1, noise `N(0, σ²)`) on a Poisson subsample with rate `q`, at order `alpha`.
///
/// * `q = 1`: `α / (2σ²)` (Mironov 2017, Prop. 7).
/// * `q < 1`, integer `α`: `log(Σ_{k=0..α} C(α,k) (1−q)^{α−k} q^k exp((k²−k)/(2σ²))) / (α−1)`
///   (Mironov, Talwar, Zhang 2019, "Rényi Differential Privacy of the Sampled Gaussian
///   Mechanism", §3.3), summed in log space. Non-integer orders give `+∞` (not tracked).
/// * `σ = 0` (no noise) gives `+∞`; `q = 0` gives 0.
pub fn rdp_gaussian(sigma: f64, q: f64, alpha: f64) -> f64 {
    if q <= 0.0 {
        return 0.0;
    }
    if sigma <= 0.0 {
        return f64::INFINITY;
    }
    if q >= 1.0 {
        return alpha / (2.0 * sigma * sigma);
    }
    if alpha.fract() != 0.0 {
        return f64::INFINITY;
    }
    let a = alpha as u64;
    let (log_q, log_1q) = (q.ln(), (-q).ln_1p());
    let mut log_binom = 0.0; // log C(a, 0)
    let mut terms = Vec::with_capacity(a as usize + 1);
    for k in 0..=a {
        if k > 0 {
            log_binom += ((a - k + 1) as f64).ln() - (k as f64).ln();
        }
        let kf = k as f64;
        terms.push(
            log_binom
                + (a - k) as f64 * log_1q
                + kf * log_q
                + (kf * kf - kf) / (2.0 * sigma * sigma),
        );
    }
    let max = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let log_a = max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln();
    (log_a / (alpha - 1.0)).max(0.0)
}

/// Composes per-round RDP and converts it to `(ε, δ)`.
///
/// Composition adds RDP order by order; conversion uses `ε = min_α RDP(α) + log(1/δ)/(α−1)`
/// (Mironov 2017, Prop. 3) over [`RDP_ORDERS`].
#[derive(Clone, Debug, PartialEq)]
pub struct RdpAccountant {
    rdp: Vec<f64>,
    steps: usize,
}

impl Default for RdpAccountant {
    fn default() -> Self {
        RdpAccountant {
            rdp: vec![0.0; RDP_ORDERS.len()],
            steps: 0,
        }
    }
}

impl RdpAccountant {
    pub fn new() -> Self {
        Self::default()
    }

    /// Accounts one round with noise multiplier `sigma` and client sampling rate `q`.
    pub fn step(&mut self, sigma: f64, q: f64) {
        for (r, &alpha) in self.rdp.iter_mut().zip(RDP_ORDERS.iter()) {
            *r += rdp_gaussian(sigma, q, alpha);
        }
        self.steps += 1;
    }

    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The per-order RDP totals and the step count (for checkpoints).
    pub(crate) fn parts(&self) -> (&[f64], usize) {
        (&self.rdp, self.steps)
    }

    /// An accountant from [`RdpAccountant::parts`]; `None` unless there is one non-negative
    /// total per order in [`RDP_ORDERS`] (`+∞` is a total: zero noise, untracked orders).
    pub(crate) fn from_parts(rdp: Vec<f64>, steps: usize) -> Option<Self> {
        let ok = rdp.len() == RDP_ORDERS.len() && rdp.iter().all(|r| *r >= 0.0);
        ok.then_some(RdpAccountant { rdp, steps })
    }

    /// `(ε, best order)` for `delta`; `ε = +∞` if no order is finite.
    pub fn epsilon(&self, delta: f64) -> (f64, f64) {
        let log_inv_delta = (1.0 / delta).ln();
        let mut best = (f64::INFINITY, f64::NAN);
        for (&r, &alpha) in self.rdp.iter().zip(RDP_ORDERS.iter()) {
            let eps = r + log_inv_delta / (alpha - 1.0);
            if eps < best.0 {
                best = (eps, alpha);
            }
        }
        best
    }

    /// `ε` after one more round with these parameters (the accountant itself is unchanged).
    pub fn epsilon_after(&self, sigma: f64, q: f64, delta: f64) -> f64 {
        let mut next = self.clone();
        next.step(sigma, q);
        next.epsilon(delta).0
    }
}

/// Scales `v` to L2 norm at most `bound`; returns the norm before clipping. Vectors within the
/// bound are left untouched (bit for bit), so clipping with a large bound changes nothing.
pub fn clip_l2(v: &mut [f64], bound: f64) -> f64 {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > bound {
        let scale = bound / norm;
        v.iter_mut().for_each(|x| *x *= scale);
    }
    norm
}

/// A standard normal draw (Box–Muller on two 53-bit uniforms in (0, 1]).
pub(crate) fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let uniform = |rng: &mut R| ((rng.next_u64() >> 11) + 1) as f64 * (-53f64).exp2();
    let (u1, u2) = (uniform(rng), uniform(rng));
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Adds `N(0, std²)` to every element.
pub(crate) fn add_gaussian<R: Rng + ?Sized>(v: &mut [f64], std: f64, rng: &mut R) {
    if std > 0.0 {
        for x in v.iter_mut() {
            *x += std * standard_normal(rng);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    /// ε for σ = 2, no subsampling, 3 rounds, δ = 1e-5, by hand:
    /// RDP(α) = 3·α/(2·2²) = 3α/8 and ε(α) = 3α/8 + ln(1e5)/(α − 1), ln(1e5) = 11.512925…
    ///   α = 6: 2.25  + 2.302585 = 4.552585
    ///   α = 7: 2.625 + 1.918821 = 4.543821   ← smallest on the grid
    ///   α = 8: 3.0   + 1.644704 = 4.644704
    #[test]
    fn epsilon_matches_hand_computation_without_subsampling() {
        let mut acc = RdpAccountant::new();
        for _ in 0..3 {
            acc.step(2.0, 1.0);
        }
        let (eps, order) = acc.epsilon(1e-5);
        let expected = 21.0 / 8.0 + (1e5f64).ln() / 6.0;
        assert_eq!(order, 7.0);
        assert!((eps - expected).abs() < 1e-12, "{eps} vs {expected}");
        assert!((expected - 4.543821).abs() < 1e-6);
    }

    /// At α = 2 the subsampled sum has three terms:
    /// (1−q)² + 2q(1−q) + q²·e^{1/σ²} = 1 + q²(e^{1/σ²} − 1), so RDP(2) = ln(1 + q²(e^{1/σ²} − 1)).
    #[test]
    fn subsampled_rdp_at_order_two_matches_closed_form() {
        for (sigma, q) in [(1.0f64, 0.1f64), (0.8, 0.5), (3.0, 0.01)] {
            let expected = (1.0 + q * q * ((1.0 / (sigma * sigma)).exp() - 1.0)).ln();
            let got = rdp_gaussian(sigma, q, 2.0);
            assert!((got - expected).abs() < 1e-12, "σ={sigma} q={q}");
            // Subsampling only helps, and never below zero.
            assert!(got < rdp_gaussian(sigma, 1.0, 2.0));
        }
        assert_eq!(rdp_gaussian(1.0, 0.5, 2.5), f64::INFINITY);
        assert_eq!(rdp_gaussian(0.0, 1.0, 2.0), f64::INFINITY);
    }

    #[test]
    fn schedule_picks_the_stage_in_force() {
        let s = NoiseSchedule {
            stages: vec![
                NoiseStage {
                    from_round: 1,
                    noise_multiplier: 2.0,
                },
                NoiseStage {
                    from_round: 4,
                    noise_multiplier: 1.0,
                },
            ],
        };
        assert_eq!(
            (1..=5).map(|r| s.multiplier_at(r)).collect::<Vec<_>>(),
            [2.0, 2.0, 2.0, 1.0, 1.0]
        );
        assert!(s.validate().is_ok());
        let bad = NoiseSchedule {
            stages: vec![NoiseStage {
                from_round: 2,
                noise_multiplier: 1.0,
            }],
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn clipping_bounds_the_norm_and_leaves_small_vectors_alone() {
        let mut v = vec![3.0, 4.0];
        assert_eq!(clip_l2(&mut v, 1.0), 5.0);
        assert!((v[0] - 0.6).abs() < 1e-15 && (v[1] - 0.8).abs() < 1e-15);
        let mut w = vec![0.1, -0.2];
        clip_l2(&mut w, 1.0);
        assert_eq!(w, vec![0.1, -0.2]);
    }

    #[test]
    fn gaussian_noise_has_the_requested_moments() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let mut v = vec![0.0; 200_000];
        add_gaussian(&mut v, 2.0, &mut rng);
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.02, "{mean}");
        assert!((var - 4.0).abs() < 0.06, "{var}");
    }
}
