//! Tells the SIMD kernel tests whether they can run on this machine.
//!
//! The AVX2 and AVX-512 copies of the matrix kernel are compiled on every x86-64 target (the
//! best one the CPU has is picked at run time), but their unit tests can only execute on a CPU
//! that has the instructions. Tests run on the machine that builds them, so the build script
//! probes the build host and sets `ferry_host_avx2` and `ferry_host_avx512`; without one, that
//! kernel's test is reported as ignored, with the reason, instead of passing without checking
//! anything. The portable kernel's test runs everywhere.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ferry_host_avx2, ferry_host_avx512)");
    println!("cargo::rerun-if-changed=build.rs");
    // Set to check, on a machine that has them, that the suite reports the kernel tests as
    // ignored (what an older CPU sees) instead of failing.
    println!("cargo::rerun-if-env-changed=FERRY_PRETEND_NO_AVX512");
    println!("cargo::rerun-if-env-changed=FERRY_PRETEND_NO_AVX2");
    let host = std::env::var("HOST").unwrap_or_default();
    let target = std::env::var("TARGET").unwrap_or_default();
    if host != target {
        return;
    }
    let (avx2, avx512) = host_features();
    if avx2 && std::env::var_os("FERRY_PRETEND_NO_AVX2").is_none() {
        println!("cargo::rustc-cfg=ferry_host_avx2");
    }
    if avx512 && std::env::var_os("FERRY_PRETEND_NO_AVX512").is_none() {
        println!("cargo::rustc-cfg=ferry_host_avx512");
    }
}

/// (AVX2, AVX-512 as the kernel needs it: avx512f, avx512bw and avx512vl), as `detect()` in
/// `src/matrix.rs` checks them.
#[cfg(target_arch = "x86_64")]
fn host_features() -> (bool, bool) {
    (
        std::arch::is_x86_feature_detected!("avx2"),
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl"),
    )
}

#[cfg(not(target_arch = "x86_64"))]
fn host_features() -> (bool, bool) {
    (false, false)
}
