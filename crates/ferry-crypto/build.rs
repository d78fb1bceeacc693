//! Tells the IFMA and ADX kernel tests whether they can run on this machine.
//!
//! The AVX-512 IFMA kernels are compiled on every x86-64 target (they are selected at run
//! time), but their unit tests can only execute on a CPU that has the instructions. Tests run
//! on the machine that builds them, so the build script probes the build host and sets
//! `ferry_host_ifma`; without it the kernel tests are reported as ignored, with the reason,
//! instead of failing or passing vacuously. The backends this CPU does have are covered by
//! the property tests that run over every available backend.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ferry_host_ifma)");
    println!("cargo::rustc-check-cfg=cfg(ferry_host_adx)");
    println!("cargo::rerun-if-changed=build.rs");
    // Set to check, on an IFMA machine, that the suite reports the kernel tests as ignored
    // (what a CPU without IFMA sees) instead of failing.
    println!("cargo::rerun-if-env-changed=FERRY_PRETEND_NO_IFMA");
    let host = std::env::var("HOST").unwrap_or_default();
    let target = std::env::var("TARGET").unwrap_or_default();
    if std::env::var_os("FERRY_PRETEND_NO_IFMA").is_none() && host == target && host_has_ifma() {
        println!("cargo::rustc-cfg=ferry_host_ifma");
    }
    // The reduction row in `mulx`/`adcx`/`adox` (src/arith/adx.rs): every x86-64 server CPU
    // of the last decade has it, so its tests run nearly everywhere; on an older CPU they are
    // reported as ignored and the GMP row covers the backend.
    if host == target && host_has_adx() {
        println!("cargo::rustc-cfg=ferry_host_adx");
    }
}

#[cfg(target_arch = "x86_64")]
fn host_has_adx() -> bool {
    std::arch::is_x86_feature_detected!("bmi2") && std::arch::is_x86_feature_detected!("adx")
}

#[cfg(not(target_arch = "x86_64"))]
fn host_has_adx() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn host_has_ifma() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512ifma")
        && std::arch::is_x86_feature_detected!("bmi2")
}

#[cfg(not(target_arch = "x86_64"))]
fn host_has_ifma() -> bool {
    false
}
