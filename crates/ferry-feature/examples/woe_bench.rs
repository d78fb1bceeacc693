//! Times federated WOE/IV: a guest with labels and 11 binned features, one host with 12,
//! 30 000 aligned rows, 10 quantile bins per feature, Paillier-2048, both parties in-process.
//!
//! ```text
//! cargo run --release -p ferry-feature --example woe_bench [-- ROWS [HOST_FEATURES [KEY_BITS]]]
//! ```
//!
//! Prints the wall time (key generation included), its parts, and the CPU features the
//! arithmetic can use (AVX-512 IFMA is the fast path of `ferry_crypto::arith`).

use ferry_crypto::arith::Backend;
use ferry_crypto::{HeSettings, SchemeKind};
use ferry_feature::binning::BinningParams;
use ferry_feature::woe::bench_local;

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .map(|a| {
            a.parse()
                .unwrap_or_else(|_| panic!("argument {i} must be a number, got {a}"))
        })
        .unwrap_or(default)
}

fn main() {
    let rows = arg(1, 30_000);
    let host_features = arg(2, 12);
    let key_bits = arg(3, 2048) as u32;
    let guest_features = 11;
    #[cfg(target_arch = "x86_64")]
    let flags = format!(
        "avx512ifma={} avx512vl={} avx2={}",
        std::arch::is_x86_feature_detected!("avx512ifma"),
        std::arch::is_x86_feature_detected!("avx512vl"),
        std::arch::is_x86_feature_detected!("avx2"),
    );
    #[cfg(not(target_arch = "x86_64"))]
    let flags = "not x86-64".to_string();
    let threads = rayon::current_num_threads();
    println!(
        "cpu: {flags}; arithmetic backend for n² ({} bits): {}; rayon threads: {threads}",
        2 * key_bits,
        Backend::best_for(2 * key_bits).name()
    );
    let he = if key_bits >= 2048 {
        HeSettings {
            scheme: SchemeKind::Paillier,
            key_bits,
            ..HeSettings::default()
        }
    } else {
        HeSettings::insecure_for_tests(SchemeKind::Paillier, key_bits)
    };
    let bench = bench_local(
        rows,
        guest_features,
        &[host_features],
        &BinningParams::default(),
        he,
        7,
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let r = &bench.report;
    println!(
        "federated WOE/IV: {rows} rows, {guest_features} guest + {host_features} host features, \
         Paillier-{key_bits}: {:.2} s wall",
        bench.seconds
    );
    println!(
        "  key generation {:.2} s, label encryption {:.2} s, decryption {:.3} s, guest total {:.2} s",
        r.keygen_seconds, r.encrypt_seconds, r.decrypt_seconds, r.total_seconds
    );
    println!(
        "  guest sent {:.1} MB, received {:.1} kB",
        r.bytes_sent as f64 / 1e6,
        r.bytes_received as f64 / 1e3
    );
    let mut iv = bench.iv.clone();
    iv.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top: Vec<String> = iv
        .iter()
        .take(5)
        .map(|(n, v)| format!("{n} {v:.3}"))
        .collect();
    println!("  highest IV: {}", top.join(", "));
}
