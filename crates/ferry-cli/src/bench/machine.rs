//! What every benchmark prints first: the machine it ran on (CPU model, cores, the CPU
//! features the arithmetic depends on, load) and which arithmetic backend is in use, and the
//! floors computed from rates measured in the same run on the cores actually used.
//!
//! Machines differ from run to run (some have AVX-512 IFMA, some only AVX2), so a figure
//! means little without this header.

use ferry_crypto::arith::{BACKEND_ENV, Backend};
use serde::Serialize;
use std::collections::BTreeMap;

/// The CPU features printed in every header, in this order.
pub const FEATURES: [&str; 8] = [
    "avx2",
    "bmi2",
    "adx",
    "avx512f",
    "avx512vl",
    "avx512ifma",
    "aes",
    "vaes",
];

/// The machine a benchmark runs on, detected at the start of the run.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    /// `std::thread::available_parallelism()`: cores this process may use (affinity and
    /// cgroup quotas included).
    pub cores: usize,
    /// Worker threads of each party process's thread pool (rayon): `RAYON_NUM_THREADS` if set,
    /// else `cores`.
    pub threads_per_process: usize,
    /// Presence of each of [`FEATURES`].
    pub features: BTreeMap<&'static str, bool>,
    /// The 1-minute load average when the run started (Linux), a hint of a shared machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_average: Option<f64>,
}

impl Machine {
    pub fn detect() -> Machine {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Machine {
            cpu_model: cpu_model().unwrap_or_else(|| "unknown CPU".into()),
            cores,
            threads_per_process: pool_threads(cores),
            features: FEATURES.iter().map(|&f| (f, has_feature(f))).collect(),
            load_average: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok()),
        }
    }

    pub fn has(&self, feature: &str) -> bool {
        self.features.get(feature).copied().unwrap_or(false)
    }

    /// The group-arithmetic backend curve25519-dalek picks at run time on this CPU (PSI):
    /// inferred from the features it checks, as the crate does not report its choice.
    pub fn curve_backend(&self) -> &'static str {
        if self.has("avx512ifma") && self.has("avx512vl") {
            "avx512ifma"
        } else if self.has("avx2") {
            "avx2"
        } else {
            "serial"
        }
    }

    /// `machine  AMD EPYC, 2 cores, 2 threads per process, load 0.52` and
    /// `features avx2 bmi2 ... (no: vaes)`.
    pub fn render(&self) -> String {
        let (yes, no): (Vec<&str>, Vec<&str>) = FEATURES.iter().partition(|f| self.has(f));
        let mut s = format!(
            "machine     {}, {} cores (available_parallelism), {} threads per process",
            self.cpu_model, self.cores, self.threads_per_process
        );
        if let Some(load) = self.load_average {
            s.push_str(&format!(", load average {load:.2} at start"));
        }
        s.push_str(&format!(
            "\nfeatures    {}{}",
            if yes.is_empty() {
                "none of the listed".to_string()
            } else {
                yes.join(" ")
            },
            if no.is_empty() {
                String::new()
            } else {
                format!("  (absent: {})", no.join(" "))
            }
        ));
        s
    }
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Threads in a rayon pool started with default settings (what each party process gets).
fn pool_threads(cores: usize) -> usize {
    ["RAYON_NUM_THREADS", "RAYON_RS_NUM_CPUS"]
        .iter()
        .find_map(|v| {
            std::env::var(v)
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .filter(|&n| n > 0)
        })
        .unwrap_or(cores)
}

fn has_feature(feature: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        match feature {
            "avx2" => std::arch::is_x86_feature_detected!("avx2"),
            "bmi2" => std::arch::is_x86_feature_detected!("bmi2"),
            "adx" => std::arch::is_x86_feature_detected!("adx"),
            "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
            "avx512vl" => std::arch::is_x86_feature_detected!("avx512vl"),
            "avx512ifma" => std::arch::is_x86_feature_detected!("avx512ifma"),
            "aes" => std::arch::is_x86_feature_detected!("aes"),
            "vaes" => std::arch::is_x86_feature_detected!("vaes"),
            _ => false,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = feature;
        false
    }
}

/// The modular-arithmetic backend the homomorphic schemes use for a modulus size.
#[derive(Clone, Debug, Serialize)]
pub struct Arithmetic {
    pub modulus_bits: u32,
    /// What `ferry_crypto` picks for this size in this process (and in the party processes,
    /// which inherit the environment).
    pub backend: &'static str,
    /// Every backend this CPU can run.
    pub available: Vec<&'static str>,
    /// `FERRY_ARITH_BACKEND`, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forced_by_env: Option<String>,
}

impl Arithmetic {
    /// For a key of `key_bits`: Paillier computes modulo n² (twice the key size), OU modulo n.
    pub fn for_key(scheme: ferry_crypto::SchemeKind, key_bits: u32) -> Arithmetic {
        let modulus_bits = match scheme {
            ferry_crypto::SchemeKind::Paillier => 2 * key_bits,
            ferry_crypto::SchemeKind::OkamotoUchiyama => key_bits,
        };
        Arithmetic::for_modulus(modulus_bits, Backend::best_for(modulus_bits))
    }

    /// For a modulus whose backend is already known (e.g. read from a prepared modulus).
    pub fn for_modulus(modulus_bits: u32, backend: Backend) -> Arithmetic {
        Arithmetic {
            modulus_bits,
            backend: backend.name(),
            available: Backend::available()
                .into_iter()
                .map(Backend::name)
                .collect(),
            forced_by_env: std::env::var(BACKEND_ENV).ok(),
        }
    }

    pub fn render(&self) -> String {
        format!(
            "arithmetic  {} for {}-bit moduli (available here: {}{})",
            self.backend,
            self.modulus_bits,
            self.available.join(", "),
            match &self.forced_by_env {
                Some(v) => format!("; {BACKEND_ENV}={v}"),
                None => String::new(),
            }
        )
    }
}

/// Threads that can run at once when `parties` processes of `threads_per_party` threads each
/// share `cores` cores.
pub fn parallel_workers(cores: usize, parties: usize, threads_per_party: usize) -> usize {
    cores.min(parties.max(1) * threads_per_party.max(1)).max(1)
}

/// The least time some work can take: its single-core seconds at rates measured in this run,
/// spread over the threads that can actually run at once.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Floor {
    pub core_seconds: f64,
    /// Threads that can run at once in this run (see [`parallel_workers`]).
    pub workers: usize,
    pub wall_seconds: f64,
}

impl Floor {
    pub fn new(core_seconds: f64, workers: usize) -> Floor {
        let workers = workers.max(1);
        Floor {
            core_seconds,
            workers,
            wall_seconds: core_seconds / workers as f64,
        }
    }

    /// `on N cores` / `on 1 core`.
    pub fn on_cores(&self) -> String {
        if self.workers == 1 {
            "on 1 core".into()
        } else {
            format!("on {} cores", self.workers)
        }
    }
}

/// The line every run with keys below 2048 bits prints (stdout, and stderr before starting).
pub fn insecure_key_warning(key_bits: u32) -> String {
    format!(
        "WARNING: {key_bits}-bit keys are below the 2048-bit minimum and can be broken; \
         allowed for this benchmark only (--key-bits {key_bits}), never for real data"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(cores: usize) -> Machine {
        Machine {
            cpu_model: "Test CPU".into(),
            cores,
            threads_per_process: cores,
            features: FEATURES.iter().map(|&f| (f, f == "avx2")).collect(),
            load_average: None,
        }
    }

    #[test]
    fn the_header_names_the_cpu_cores_and_every_feature() {
        let text = machine(8).render();
        assert!(text.contains("Test CPU, 8 cores"), "{text}");
        for f in FEATURES {
            assert!(text.contains(f), "{f} missing from {text}");
        }
        assert!(text.contains("absent: bmi2"), "{text}");
        assert_eq!(machine(8).curve_backend(), "avx2");
    }

    #[test]
    fn workers_are_bounded_by_cores_and_by_threads() {
        assert_eq!(parallel_workers(2, 2, 2), 2);
        assert_eq!(parallel_workers(16, 2, 16), 16);
        assert_eq!(parallel_workers(16, 2, 1), 2);
        assert_eq!(parallel_workers(1, 3, 1), 1);
        assert_eq!(parallel_workers(0, 0, 0), 1);
    }

    #[test]
    fn a_floor_divides_by_the_workers_it_is_given() {
        let two = Floor::new(12.0, 2);
        let eight = Floor::new(12.0, 8);
        assert_eq!(two.wall_seconds, 6.0);
        assert_eq!(eight.wall_seconds, 1.5);
        assert_eq!(eight.on_cores(), "on 8 cores");
        assert_eq!(Floor::new(3.0, 1).on_cores(), "on 1 core");
    }

    #[test]
    fn paillier_arithmetic_is_modulo_n_squared() {
        let a = Arithmetic::for_key(ferry_crypto::SchemeKind::Paillier, 1024);
        assert_eq!(a.modulus_bits, 2048);
        assert!(a.available.contains(&a.backend) || a.forced_by_env.is_some());
        assert!(a.render().contains("2048-bit moduli"));
        let o = Arithmetic::for_key(ferry_crypto::SchemeKind::OkamotoUchiyama, 2048);
        assert_eq!(o.modulus_bits, 2048);
    }
}
