//! The arithmetic of SimplePIR: matrix × several vectors over Z_{2^32}, the public matrix A
//! from a seed, and the discrete Gaussian error.
//!
//! # The kernel
//!
//! Every heavy step is `out_k = M · v_k` for a row-major matrix `M` (bytes: the database; or
//! `u32`: A and the hint) and up to [`GROUP`] vectors at once: the provider's answer
//! (database × queries), the hint (database × columns of A), the querier's `A·s` and
//! `hint·s`. One pass over `M` serves the whole group, so the database is read once per
//! group instead of once per vector; rows are split into blocks over rayon's threads.
//!
//! The inner loop works on [`LANES`] = 16 entries: widen to `u32`, multiply, add into one
//! accumulator per vector; wrapping arithmetic is exactly arithmetic mod q = 2^32. Three
//! copies exist and the best one the CPU has is picked at run time (no global target
//! features, so the binary runs on any x86-64 CPU): AVX-512 with intrinsics (`vpmovzxbd`,
//! `vpmulld`, `vpaddd` on zmm, a register tile of rows × vectors, see `avx512` below), and the
//! plain-Rust loop compiled for AVX2 (which LLVM vectorises to ymm) and for the baseline.
//! `FERRY_PIR_KERNEL=avx2|portable` forces a weaker one. On the 2-core development machine
//! with a 166.5 MB database (10^6 rows of 64 bytes): AVX-512 answers 8 queries per pass at
//! 71 G multiply-adds/s and one query in 7 ms (memory-bound, ~20 GB/s), the AVX2 loop at
//! 33 G/s and 11 ms; the hint took 2.8 s against 5.8 s.
//!
//! Each copy has its own test against the naive product; `build.rs` has the AVX2 and AVX-512
//! ones reported as ignored, with the reason, when the build host lacks the instructions.

use crate::params::{LWE_N, NOISE_SIGMA, NOISE_TAIL};
use rand::{CryptoRng, Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use std::sync::OnceLock;

/// Entries per step of the inner loop (one AVX-512 register of `u32`).
pub const LANES: usize = 16;

/// Vectors per pass over the matrix.
pub const GROUP: usize = 8;

/// Matrix rows per rayon task.
const ROW_BLOCK: usize = 16;

/// A matrix entry: a database byte or an element of Z_q.
pub(crate) trait Entry: Copy + Send + Sync + 'static {
    const BYTES: usize;
    fn widen(self) -> u32;
}

impl Entry for u8 {
    const BYTES: usize = 1;
    #[inline(always)]
    fn widen(self) -> u32 {
        self as u32
    }
}

impl Entry for u32 {
    const BYTES: usize = 4;
    #[inline(always)]
    fn widen(self) -> u32 {
        self
    }
}

/// Dot products of one row with `K` vectors, all of the row's length.
#[inline(always)]
fn row_dots<T: Entry, const K: usize>(row: &[T], vecs: &[&[u32]; K]) -> [u32; K] {
    let (chunks, tail) = row.as_chunks::<LANES>();
    let mut split: [&[[u32; LANES]]; K] = [&[]; K];
    let mut tails: [&[u32]; K] = [&[]; K];
    for k in 0..K {
        let (c, t) = vecs[k].as_chunks::<LANES>();
        split[k] = &c[..chunks.len()];
        tails[k] = t;
    }
    let mut acc = [[0u32; LANES]; K];
    for (c, r) in chunks.iter().enumerate() {
        let mut d = [0u32; LANES];
        for l in 0..LANES {
            d[l] = r[l].widen();
        }
        for k in 0..K {
            let v = &split[k][c];
            for l in 0..LANES {
                acc[k][l] = acc[k][l].wrapping_add(d[l].wrapping_mul(v[l]));
            }
        }
    }
    let mut out = [0u32; K];
    for k in 0..K {
        let mut s = acc[k].iter().fold(0u32, |a, &b| a.wrapping_add(b));
        for (x, v) in tail.iter().zip(tails[k]) {
            s = s.wrapping_add(x.widen().wrapping_mul(*v));
        }
        out[k] = s;
    }
    out
}

#[inline(always)]
fn block_generic<T: Entry, const K: usize>(
    block: &[T],
    cols: usize,
    vecs: &[&[u32]; K],
    out: &mut [[u32; K]],
) {
    for (row, o) in block.chunks_exact(cols).zip(out.iter_mut()) {
        *o = row_dots(row, vecs);
    }
}

// The AVX-512 kernel, written with intrinsics: LLVM's auto-vectoriser keeps to 256-bit
// vectors on this target and re-loads every vector chunk for every row. Here a tile of `R`
// rows × `K` vectors keeps `R·K` accumulators in zmm registers, so each 16-entry chunk of a
// vector is loaded once per `R` rows and each chunk of a row once per `K` vectors.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Entry, LANES};
    use std::arch::x86_64::*;

    /// 16 entries from `p` widened to `u32` lanes.
    ///
    /// SAFETY: `p` must be valid for reading 16 entries; AVX-512F must be available.
    #[inline(always)]
    unsafe fn load16<T: Entry>(p: *const T) -> __m512i {
        unsafe {
            if T::BYTES == 1 {
                _mm512_cvtepu8_epi32(_mm_loadu_si128(p as *const __m128i))
            } else {
                _mm512_loadu_si512(p as *const __m512i)
            }
        }
    }

    /// Dot products of the `R` rows starting at `rows` (each `cols` entries) with `K` vectors.
    ///
    /// SAFETY: `rows` holds at least `R · cols` entries, every vector `cols` entries, `out` at
    /// least `R` rows; AVX-512F must be available.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // r and k index fixed-size register tiles
    unsafe fn tile<T: Entry, const R: usize, const K: usize>(
        rows: &[T],
        cols: usize,
        vecs: &[&[u32]; K],
        out: &mut [[u32; K]],
    ) {
        let full = cols - cols % LANES;
        unsafe {
            let mut acc = [[_mm512_setzero_si512(); K]; R];
            let mut j = 0;
            while j < full {
                let mut v = [_mm512_setzero_si512(); K];
                for k in 0..K {
                    v[k] = _mm512_loadu_si512(vecs[k].as_ptr().add(j) as *const __m512i);
                }
                for r in 0..R {
                    let d = load16(rows.as_ptr().add(r * cols + j));
                    for k in 0..K {
                        acc[r][k] = _mm512_add_epi32(acc[r][k], _mm512_mullo_epi32(d, v[k]));
                    }
                }
                j += LANES;
            }
            for r in 0..R {
                for k in 0..K {
                    let mut s = _mm512_reduce_add_epi32(acc[r][k]) as u32;
                    for jj in full..cols {
                        s = s.wrapping_add(rows[r * cols + jj].widen().wrapping_mul(vecs[k][jj]));
                    }
                    out[r][k] = s;
                }
            }
        }
    }

    /// SAFETY: the CPU must have avx512f, avx512bw and avx512vl.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn block<T: Entry, const K: usize>(
        block: &[T],
        cols: usize,
        vecs: &[&[u32]; K],
        out: &mut [[u32; K]],
    ) {
        let rows = out.len();
        assert!(block.len() >= rows * cols && vecs.iter().all(|v| v.len() == cols));
        let mut i = 0;
        // SAFETY (every call): rows i..i+R exist in `block` and `out` (checked by the loop
        // bounds and the assertion above), every vector has `cols` entries.
        unsafe {
            if K <= 4 {
                while i + 4 <= rows {
                    tile::<T, 4, K>(&block[i * cols..], cols, vecs, &mut out[i..]);
                    i += 4;
                }
            } else {
                while i + 2 <= rows {
                    tile::<T, 2, K>(&block[i * cols..], cols, vecs, &mut out[i..]);
                    i += 2;
                }
            }
            while i < rows {
                tile::<T, 1, K>(&block[i * cols..], cols, vecs, &mut out[i..]);
                i += 1;
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
fn block_avx512<T: Entry, const K: usize>(
    block: &[T],
    cols: usize,
    vecs: &[&[u32]; K],
    out: &mut [[u32; K]],
) {
    assert!(detect() == Kernel::Avx512, "the CPU lacks AVX-512");
    // SAFETY: the CPU has avx512f, avx512bw and avx512vl (asserted above).
    unsafe { avx512::block(block, cols, vecs, out) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn block_avx2<T: Entry, const K: usize>(
    block: &[T],
    cols: usize,
    vecs: &[&[u32]; K],
    out: &mut [[u32; K]],
) {
    block_generic(block, cols, vecs, out)
}

/// Which compiled copy of the kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Avx512,
    Avx2,
    Portable,
}

impl Kernel {
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Avx512 => "avx512",
            Kernel::Avx2 => "avx2",
            Kernel::Portable => "portable",
        }
    }
}

/// The kernel this CPU runs (detected once). `FERRY_PIR_KERNEL=portable|avx2` forces a
/// weaker one (for comparisons; a stronger one than the CPU has is ignored).
pub fn kernel() -> Kernel {
    static KERNEL: OnceLock<Kernel> = OnceLock::new();
    *KERNEL.get_or_init(|| {
        let best = detect();
        match std::env::var("FERRY_PIR_KERNEL").as_deref() {
            Ok("portable") => Kernel::Portable,
            Ok("avx2") if best != Kernel::Portable => Kernel::Avx2,
            _ => best,
        }
    })
}

fn detect() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            return Kernel::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return Kernel::Avx2;
        }
    }
    Kernel::Portable
}

fn block_dispatch<T: Entry, const K: usize>(
    block: &[T],
    cols: usize,
    vecs: &[&[u32]; K],
    out: &mut [[u32; K]],
) {
    match kernel() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `kernel()` returns Avx512 only when the CPU reports avx512f, avx512bw and
        // avx512vl, the features `avx512::block` is compiled for.
        Kernel::Avx512 => unsafe { avx512::block(block, cols, vecs, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `kernel()` returns Avx2 only when the CPU reports avx2.
        Kernel::Avx2 => unsafe { block_avx2(block, cols, vecs, out) },
        _ => block_generic(block, cols, vecs, out),
    }
}

fn group_pass<T: Entry, const K: usize>(
    mat: &[T],
    cols: usize,
    vecs: &[&[u32]; K],
) -> Vec<[u32; K]> {
    let rows = mat.len().checked_div(cols).unwrap_or(0);
    let mut out = vec![[0u32; K]; rows];
    if cols == 0 {
        return out;
    }
    out.par_chunks_mut(ROW_BLOCK)
        .zip(mat.par_chunks(ROW_BLOCK * cols))
        .for_each(|(o, block)| block_dispatch(block, cols, vecs, o));
    out
}

fn group_into<T: Entry, const K: usize>(
    mat: &[T],
    cols: usize,
    vecs: &[&[u32]],
    out: &mut [Vec<u32>],
) {
    let zeros = vec![0u32; cols];
    let mut arr: [&[u32]; K] = [&zeros; K];
    for (a, v) in arr.iter_mut().zip(vecs) {
        *a = v;
    }
    let res = group_pass::<T, K>(mat, cols, &arr);
    for (k, o) in out.iter_mut().enumerate() {
        *o = res.iter().map(|r| r[k]).collect();
    }
}

/// `M · v` for each vector (wrapping `u32`): `M` is `mat.len() / cols` rows of `cols`
/// entries, row-major; every vector has `cols` entries.
pub(crate) fn mul_vecs<T: Entry>(mat: &[T], cols: usize, vecs: &[&[u32]]) -> Vec<Vec<u32>> {
    assert!(
        cols == 0 || mat.len().is_multiple_of(cols),
        "matrix is whole rows"
    );
    assert!(
        vecs.iter().all(|v| v.len() == cols),
        "vectors match the matrix"
    );
    let mut out = vec![Vec::new(); vecs.len()];
    for (vs, os) in vecs.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
        match vs.len() {
            1 => group_into::<T, 1>(mat, cols, vs, os),
            2 => group_into::<T, 2>(mat, cols, vs, os),
            3 | 4 => group_into::<T, 4>(mat, cols, vs, os),
            _ => group_into::<T, GROUP>(mat, cols, vs, os),
        }
    }
    out
}

/// Wrapping sum of a vector (for the centring correction `Σ_j (d_j − 128)·v_j`).
pub(crate) fn wrapping_sum(v: &[u32]) -> u32 {
    v.iter().fold(0u32, |a, &b| a.wrapping_add(b))
}

/// The public matrix A (`rows × n`, row-major) from its seed: row j is the ChaCha20
/// keystream of the seed on stream j, read as little-endian `u32`. Both parties compute it.
pub(crate) fn lwe_matrix(seed: &[u8; 32], rows: usize) -> Vec<u32> {
    let mut a = vec![0u32; rows * LWE_N];
    a.par_chunks_mut(LWE_N).enumerate().for_each(|(j, row)| {
        let mut rng = ChaCha20Rng::from_seed(*seed);
        rng.set_stream(j as u64);
        for x in row.iter_mut() {
            *x = rng.next_u32();
        }
    });
    a
}

/// Transposes a row-major `rows × cols` matrix.
pub(crate) fn transpose<T: Copy + Default + Send + Sync>(
    m: &[T],
    rows: usize,
    cols: usize,
) -> Vec<T> {
    const TILE: usize = 64;
    let mut t = vec![T::default(); m.len()];
    if rows == 0 || cols == 0 {
        return t;
    }
    // Parallel over bands of output rows (= input columns).
    t.par_chunks_mut(TILE * rows)
        .enumerate()
        .for_each(|(band, out)| {
            let c0 = band * TILE;
            let c1 = (c0 + TILE).min(cols);
            for r0 in (0..rows).step_by(TILE) {
                let r1 = (r0 + TILE).min(rows);
                for c in c0..c1 {
                    let o = &mut out[(c - c0) * rows..(c - c0 + 1) * rows];
                    for r in r0..r1 {
                        o[r] = m[r * cols + c];
                    }
                }
            }
        });
    t
}

/// Cumulative distribution table of the discrete Gaussian of standard deviation σ folded
/// onto `|e|`: entry x is `P(|e| ≤ x)` scaled to 2^64. A uniform `u64` below entry x and not
/// below entry x−1 gives `|e| = x`; a second random bit gives the sign. Computed in `f64`
/// (statistical distance to the exact distribution about 2^-50).
pub(crate) struct Gaussian {
    cdf: Vec<u64>,
}

impl Gaussian {
    pub fn new() -> Self {
        let rho = |x: i32| (-(x as f64).powi(2) / (2.0 * NOISE_SIGMA * NOISE_SIGMA)).exp();
        let total: f64 = rho(0) + 2.0 * (1..=NOISE_TAIL).map(rho).sum::<f64>();
        let mut acc = 0.0f64;
        let mut cdf = Vec::with_capacity(NOISE_TAIL as usize + 1);
        for x in 0..=NOISE_TAIL {
            acc += if x == 0 { rho(0) } else { 2.0 * rho(x) } / total;
            let scaled = acc * 18_446_744_073_709_551_616.0; // 2^64
            cdf.push(if scaled >= u64::MAX as f64 {
                u64::MAX
            } else {
                scaled as u64
            });
        }
        if let Some(last) = cdf.last_mut() {
            *last = u64::MAX;
        }
        Gaussian { cdf }
    }

    /// One sample as an element of Z_q.
    #[inline]
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R, sign_bits: &mut (u64, u32)) -> u32 {
        let u = rng.next_u64();
        let magnitude = self
            .cdf
            .partition_point(|&c| c <= u)
            .min(NOISE_TAIL as usize) as u32;
        if sign_bits.1 == 0 {
            *sign_bits = (rng.next_u64(), 64);
        }
        let negative = sign_bits.0 & 1 == 1;
        sign_bits.0 >>= 1;
        sign_bits.1 -= 1;
        if negative {
            magnitude.wrapping_neg()
        } else {
            magnitude
        }
    }

    /// `len` samples.
    pub fn vector<R: Rng + ?Sized>(&self, rng: &mut R, len: usize) -> Vec<u32> {
        let mut bits = (0u64, 0u32);
        (0..len).map(|_| self.sample(rng, &mut bits)).collect()
    }
}

/// A ChaCha20 generator seeded from `rng` (independent streams for parallel work).
pub(crate) fn fork<R: CryptoRng + ?Sized>(rng: &mut R) -> ChaCha20Rng {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    ChaCha20Rng::from_seed(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive<T: Entry>(mat: &[T], cols: usize, v: &[u32]) -> Vec<u32> {
        mat.chunks(cols)
            .map(|row| {
                row.iter()
                    .zip(v)
                    .fold(0u32, |a, (x, y)| a.wrapping_add(x.widen().wrapping_mul(*y)))
            })
            .collect()
    }

    #[test]
    fn kernel_matches_naive_for_every_group_size_and_odd_shapes() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        for (rows, cols) in [(1, 1), (3, 15), (17, 16), (40, 33), (33, 100), (0, 5)] {
            let mat8: Vec<u8> = (0..rows * cols).map(|_| rng.next_u32() as u8).collect();
            let mat32: Vec<u32> = (0..rows * cols).map(|_| rng.next_u32()).collect();
            for k in 1..=11 {
                let vecs: Vec<Vec<u32>> = (0..k)
                    .map(|_| (0..cols).map(|_| rng.next_u32()).collect())
                    .collect();
                let refs: Vec<&[u32]> = vecs.iter().map(|v| v.as_slice()).collect();
                let got8 = mul_vecs(&mat8, cols, &refs);
                let got32 = mul_vecs(&mat32, cols, &refs);
                for (i, v) in vecs.iter().enumerate() {
                    assert_eq!(got8[i], naive(&mat8, cols, v), "u8 {rows}x{cols} k={k}");
                    assert_eq!(got32[i], naive(&mat32, cols, v), "u32 {rows}x{cols} k={k}");
                }
            }
        }
    }

    /// The build script found the instructions on the build host, but this CPU lacks them.
    #[cfg(target_arch = "x86_64")]
    const MOVED_HOST: &str = "these tests were built on a CPU with the instructions but run on \
                              one without; rebuild them on this machine (cargo clean -p ferry-pir)";

    /// Runs the compiled copy `kernel` on one block, whichever copy `kernel()` picks here.
    fn run_kernel<T: Entry, const K: usize>(
        kernel: Kernel,
        mat: &[T],
        cols: usize,
        vecs: &[&[u32]; K],
        out: &mut [[u32; K]],
    ) {
        match kernel {
            Kernel::Portable => block_generic(mat, cols, vecs, out),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                assert!(std::arch::is_x86_feature_detected!("avx2"), "{MOVED_HOST}");
                // SAFETY: the CPU has avx2 (asserted above).
                unsafe { block_avx2(mat, cols, vecs, out) }
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                assert!(detect() == Kernel::Avx512, "{MOVED_HOST}");
                block_avx512(mat, cols, vecs, out)
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("only x86-64 has SIMD copies of the kernel"),
        }
    }

    /// `kernel` gives the naive product for 1, 2, 4 and 8 vectors, bytes and `u32` entries, on
    /// 37 rows (tiles of 4 and 2 rows with remainders) by 70 columns (a 6-entry tail).
    fn kernel_agrees_with_naive(kernel: Kernel) {
        fn check<T: Entry, const K: usize>(
            kernel: Kernel,
            mat: &[T],
            cols: usize,
            vs: &[Vec<u32>],
        ) {
            let rows = mat.len() / cols;
            let vecs: [&[u32]; K] = std::array::from_fn(|k| vs[k].as_slice());
            let mut out = vec![[0u32; K]; rows];
            run_kernel(kernel, mat, cols, &vecs, &mut out);
            for (k, v) in vs.iter().enumerate().take(K) {
                let col: Vec<u32> = out.iter().map(|r| r[k]).collect();
                assert_eq!(col, naive(mat, cols, v), "{}, K = {K}", kernel.name());
            }
        }
        let mut rng = ChaCha20Rng::seed_from_u64(10);
        let (rows, cols) = (37, 70);
        let mat8: Vec<u8> = (0..rows * cols).map(|_| rng.next_u32() as u8).collect();
        let mat32: Vec<u32> = (0..rows * cols).map(|_| rng.next_u32()).collect();
        let vs: Vec<Vec<u32>> = (0..GROUP)
            .map(|_| (0..cols).map(|_| rng.next_u32()).collect())
            .collect();
        check::<u8, 1>(kernel, &mat8, cols, &vs);
        check::<u8, 2>(kernel, &mat8, cols, &vs);
        check::<u8, 4>(kernel, &mat8, cols, &vs);
        check::<u8, GROUP>(kernel, &mat8, cols, &vs);
        check::<u32, 1>(kernel, &mat32, cols, &vs);
        check::<u32, 4>(kernel, &mat32, cols, &vs);
        check::<u32, GROUP>(kernel, &mat32, cols, &vs);
    }

    #[test]
    fn portable_kernel_agrees_with_naive() {
        kernel_agrees_with_naive(Kernel::Portable);
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    #[cfg_attr(
        not(ferry_host_avx2),
        ignore = "this CPU has no AVX2, so the AVX2 kernel cannot run here; \
                  portable_kernel_agrees_with_naive covers this machine"
    )]
    fn avx2_kernel_agrees_with_naive() {
        kernel_agrees_with_naive(Kernel::Avx2);
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    #[cfg_attr(
        not(ferry_host_avx512),
        ignore = "this CPU has no AVX-512 (avx512f, avx512bw, avx512vl), so the AVX-512 kernel \
                  cannot run here; the other kernels' tests cover this machine"
    )]
    fn avx512_kernel_agrees_with_naive() {
        kernel_agrees_with_naive(Kernel::Avx512);
    }

    #[test]
    fn matrix_a_is_a_function_of_the_seed() {
        let a = lwe_matrix(&[1; 32], 3);
        assert_eq!(a, lwe_matrix(&[1; 32], 3));
        assert_ne!(a, lwe_matrix(&[2; 32], 3));
        assert_eq!(a[..2 * LWE_N], lwe_matrix(&[1; 32], 2)[..]);
        assert_ne!(a[..LWE_N], a[LWE_N..2 * LWE_N]);
    }

    #[test]
    fn transpose_round_trips() {
        let m: Vec<u32> = (0..70 * 130).collect();
        let t = transpose(&m, 70, 130);
        assert_eq!(t[5 * 70 + 3], m[3 * 130 + 5]);
        assert_eq!(transpose(&t, 130, 70), m);
    }

    #[test]
    fn gaussian_has_the_right_moments_and_support() {
        let g = Gaussian::new();
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let xs: Vec<i32> = g
            .vector(&mut rng, 200_000)
            .into_iter()
            .map(|x| x as i32)
            .collect();
        let n = xs.len() as f64;
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var.sqrt() - NOISE_SIGMA).abs() < 0.05, "sd {}", var.sqrt());
        assert!(xs.iter().all(|x| x.abs() <= NOISE_TAIL));
        assert!(xs.iter().any(|&x| x < -15) && xs.iter().any(|&x| x > 15));
    }
}
