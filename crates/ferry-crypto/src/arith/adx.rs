//! One row of Montgomery's reduction, `t[..n] += q·m[..n]` returning the carry word, in
//! x86-64 assembly with `mulx` and two independent carry chains (`adcx` through the carry
//! flag, `adox` through the overflow flag): the instructions of BMI2 and ADX, which every
//! x86-64 server CPU of the last decade has (Intel from Broadwell, AMD from Zen 1), AVX-512
//! or not.
//!
//! Why: without IFMA the reduction's rows are the largest single cost of the homomorphic
//! schemes ([`super::mpn`]), and GMP's `mpn_addmul_1`, called once per row, ran at about 1.8
//! cycles per word product on the development machine (AMD EPYC, Zen 4). Here every word of a
//! row adds its low product half on the carry chain and the previous word's high half on the
//! overflow chain, so neither addition waits for the other's carry, and the loop is unrolled
//! eight words deep with flag-free bookkeeping (`lea`, `jrcxz`) so the chains survive from one
//! block to the next. Measured in the same process on that machine, a product plus reduction
//! took 952 ns against 1200 ns at 32 words (2048-bit moduli) and 524 against 615 ns at 22
//! words (OU's 1366-bit `p²`).
//!
//! The rest of the reduction (the carry words, the final subtraction) stays in
//! [`super::mpn`]; only the row is here, so the same Rust code drives both kernels and the
//! tests compare them word for word.

/// Whether this CPU can run [`addmul_row`] (BMI2 for `mulx`, ADX for `adcx`/`adox`).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("bmi2") && std::arch::is_x86_feature_detected!("adx")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One word of the row: `t[off] += lo(q·m[off]) + the previous word's high half` on the two
/// carry chains, leaving this word's high half in `new_hi` (`off` in bytes).
#[cfg(target_arch = "x86_64")]
macro_rules! row_word {
    ($off:literal, $new_hi:literal, $old_hi:literal) => {
        concat!(
            "mulx {",
            $new_hi,
            "}, {lo}, qword ptr [{m} + ",
            $off,
            "]\n",
            "adcx {lo}, qword ptr [{t} + ",
            $off,
            "]\n",
            "adox {lo}, {",
            $old_hi,
            "}\n",
            "mov qword ptr [{t} + ",
            $off,
            "], {lo}",
        )
    };
}

/// `t[..n] += q·m[..n]`; returns the word carried out of `t[n - 1]` (the sum fits in `n + 1`
/// words, so the carry is one word).
///
/// # Safety
/// The CPU has BMI2 and ADX ([`available`]); `t` is valid for reads and writes and `m` for
/// reads of `n` words each, and the two do not overlap.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) unsafe fn addmul_row(t: *mut u64, m: *const u64, n: usize, q: u64) -> u64 {
    let carry: u64;
    // Register use: rdx = q (mulx's implicit operand); rcx = a loop count (jrcxz tests it
    // without touching the flags, which carry the two chains); {hi} = the previous word's high
    // product half, still to be added; {hi2} = the next one; {lo} = the word being summed.
    // The high halves alternate between {hi} and {hi2}, so a block ends with the last one in
    // {hi}, which is where the next block and the final carry expect it.
    //
    // SAFETY: the caller guarantees the instructions exist and that `t` and `m` cover `n`
    // words; the code reads `m[..n]` and `t[..n]` and writes `t[..n]` only, once each.
    unsafe {
        std::arch::asm!(
            // hi = 0; xor (and test) clear CF and OF: both chains start empty. (jz rather
            // than jrcxz here: jrcxz only reaches 127 bytes, less than the block it skips.)
            "xor {hi:e}, {hi:e}",
            "test rcx, rcx",
            "jz 3f",
            // Eight words a block. The loop starts on a 64-byte boundary, so that where it falls
            // does not depend on the code the row is inlined into (one build measured OU
            // decryption 3 % faster with it; the larger swing between builds was inlining, see
            // `mpn::redc`).
            ".p2align 6",
            "2:",
            row_word!(0, "hi2", "hi"),
            row_word!(8, "hi", "hi2"),
            row_word!(16, "hi2", "hi"),
            row_word!(24, "hi", "hi2"),
            row_word!(32, "hi2", "hi"),
            row_word!(40, "hi", "hi2"),
            row_word!(48, "hi2", "hi"),
            row_word!(56, "hi", "hi2"),
            "lea {m}, [{m} + 64]",
            "lea {t}, [{t} + 64]",
            "lea rcx, [rcx - 1]",
            "jrcxz 3f",
            "jmp 2b",
            // One block of four words if n mod 8 >= 4.
            "3:",
            "mov rcx, {fours}",
            "jrcxz 4f",
            row_word!(0, "hi2", "hi"),
            row_word!(8, "hi", "hi2"),
            row_word!(16, "hi2", "hi"),
            row_word!(24, "hi", "hi2"),
            "lea {m}, [{m} + 32]",
            "lea {t}, [{t} + 32]",
            // The last n mod 4 words one at a time.
            "4:",
            "mov rcx, {ones}",
            "jrcxz 6f",
            "5:",
            row_word!(0, "hi2", "hi"),
            "mov {hi}, {hi2}",
            "lea {m}, [{m} + 8]",
            "lea {t}, [{t} + 8]",
            "lea rcx, [rcx - 1]",
            "jrcxz 6f",
            "jmp 5b",
            // carry = last high half + both chains' carries (mov leaves the flags alone).
            "6:",
            "mov {lo:e}, 0",
            "adcx {hi}, {lo}",
            "adox {hi}, {lo}",
            inout("rcx") n / 8 => _,
            fours = in(reg) (n % 8) / 4,
            ones = in(reg) n % 4,
            m = inout(reg) m => _,
            t = inout(reg) t => _,
            hi = out(reg) carry,
            hi2 = out(reg) _,
            lo = out(reg) _,
            in("rdx") q,
            options(nostack),
        );
    }
    carry
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use gmp_mpfr_sys::gmp;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Every length from 1 to 40 words (all paths: eight-word blocks, the four-word block,
        /// single words, and their combinations) against GMP's `mpn_addmul_1`, with words
        /// biased towards all-ones so that both carry chains ripple.
        #[test]
        #[cfg_attr(not(ferry_host_adx), ignore = "this CPU has no BMI2/ADX, so the kernel cannot run here; the GMP row covers this machine")]
        fn row_matches_gmp_addmul_1(
            n in 1usize..=40,
            q in prop_oneof![Just(u64::MAX), any::<u64>()],
            t_words in prop::collection::vec(prop_oneof![Just(u64::MAX), Just(0u64), any::<u64>()], 40),
            m_words in prop::collection::vec(prop_oneof![Just(u64::MAX), any::<u64>()], 40),
        ) {
            assert!(available(), "built on a CPU with BMI2/ADX but running on one without");
            let m = &m_words[..n];
            let mut ours = t_words[..n].to_vec();
            let mut theirs = ours.clone();
            // SAFETY: both buffers hold n words and the CPU has the instructions (assumed).
            let c_ours = unsafe { addmul_row(ours.as_mut_ptr(), m.as_ptr(), n, q) };
            // SAFETY: `theirs` and `m` hold n words.
            let c_theirs =
                unsafe { gmp::mpn_addmul_1(theirs.as_mut_ptr(), m.as_ptr(), n as gmp::size_t, q) };
            prop_assert_eq!(ours, theirs);
            prop_assert_eq!(c_ours, c_theirs);
        }
    }

    /// The worst case for the carry: every word all-ones, where the sum needs the whole
    /// `n + 1`-th word.
    #[test]
    #[cfg_attr(
        not(ferry_host_adx),
        ignore = "this CPU has no BMI2/ADX, so the kernel cannot run here"
    )]
    fn all_ones_row_carries_into_the_extra_word() {
        assert!(
            available(),
            "built on a CPU with BMI2/ADX but running on one without"
        );
        for n in 1..=40 {
            let m = vec![u64::MAX; n];
            let mut t = vec![u64::MAX; n];
            // SAFETY: n words each; instructions checked above.
            let carry = unsafe { addmul_row(t.as_mut_ptr(), m.as_ptr(), n, u64::MAX) };
            // (2^64n - 1) + (2^64 - 1)(2^64n - 1) = 2^64 (2^64n - 1): words 0, then all ones.
            assert_eq!(t[0], 0, "n = {n}");
            assert!(t[1..].iter().all(|&w| w == u64::MAX), "n = {n}");
            assert_eq!(carry, u64::MAX, "n = {n}");
        }
    }
}
