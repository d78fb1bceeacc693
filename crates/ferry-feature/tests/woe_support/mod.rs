//! Helpers shared by the WOE, binning and selection tests: rosters, small keys, binned
//! synthetic data, runs over a `LocalCluster`.
#![allow(dead_code)]

use ferry_context::{LocalCluster, PartyOutcome, Role, Roster};
use ferry_crypto::{HeSettings, SchemeKind};
use ferry_feature::binning::{BinningParams, FeatureBinning, fit_numeric};
use ferry_feature::woe::{
    BinnedFeature, SyntheticData, WoeError, WoeOutcome, WoeParams, federated_woe, synthetic,
};

pub const GUEST: &str = "bank";
pub const HOSTS: [&str; 2] = ["telco", "isp"];

/// The guest and the first `hosts` hosts.
pub fn roster(hosts: usize) -> Roster {
    let mut parties = vec![(GUEST, Role::Guest)];
    parties.extend(HOSTS[..hosts].iter().map(|h| (*h, Role::Host)));
    Roster::of(&parties)
}

/// Small keys for fast tests, seeded randomness.
pub fn params(key_bits: u32) -> WoeParams {
    WoeParams {
        he: HeSettings::insecure_for_tests(SchemeKind::Paillier, key_bits),
        insecure_test_rng_seed: Some(11),
        ..WoeParams::default()
    }
}

/// Synthetic data with every column binned (quantile, 10 bins by default).
pub struct Binned {
    pub data: SyntheticData,
    pub guest: Vec<BinnedFeature>,
    pub hosts: Vec<Vec<BinnedFeature>>,
    pub host_binnings: Vec<Vec<FeatureBinning>>,
}

pub fn binned(rows: usize, guest: usize, hosts: &[usize], seed: u64, bp: &BinningParams) -> Binned {
    let data = synthetic(rows, guest, hosts, seed);
    let fit = |cols: &[(String, Vec<f64>)]| -> (Vec<FeatureBinning>, Vec<BinnedFeature>) {
        cols.iter()
            .map(|(n, v)| {
                let b = fit_numeric(n, v, None, bp).unwrap();
                let f = BinnedFeature::numeric(&b, v);
                (b, f)
            })
            .unzip()
    };
    let (_, guest) = fit(&data.guest);
    let (host_binnings, hosts): (Vec<_>, Vec<_>) = data.hosts.iter().map(|c| fit(c)).unzip();
    Binned {
        data,
        guest,
        hosts,
        host_binnings,
    }
}

/// Runs federated WOE: the guest with `guest` features and `labels`, host `k` with
/// `hosts[k]`; `host_params` per host (defaults to `p`).
pub fn run_woe(
    cluster: LocalCluster,
    labels: &[f64],
    guest: &[BinnedFeature],
    hosts: &[Vec<BinnedFeature>],
    p: &WoeParams,
    host_params: Option<&[WoeParams]>,
) -> Vec<PartyOutcome<WoeOutcome>> {
    cluster.run(|ctx| -> Result<WoeOutcome, WoeError> {
        let me = ctx.me().as_str().to_string();
        match HOSTS.iter().position(|h| *h == me) {
            Some(k) => {
                let hp = host_params.map_or(p, |hp| &hp[k]);
                federated_woe(&ctx, &hosts[k], None, hp)
            }
            None => federated_woe(&ctx, guest, Some(labels), p),
        }
    })
}
