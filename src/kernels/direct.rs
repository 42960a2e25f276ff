//! Direct stride-1 convolution with register-blocked SIMD micro-kernels (AVX-512; AVX2 + FMA).
//!
//! `out[co][n] = Σ_ci Σ_(ky,kx) w[co][ci][ky][kx] · xp[ci][n + ky·dh·Wp + kx·dw]`
//!
//! on the padded-width grid `n = oy·Wp + ox` of a zero-padded input `xp` (`Wp` its padded width;
//! the columns `ox ≥ W_out` of the grid are computed and thrown away). A micro-kernel holds an
//! 8-output-channel × 48-position (AVX-512) or × 24-position (AVX2) tile of `out` in registers and
//! streams `C_in · kh · kw` steps of one contiguous vector load of `xp` per 16 (8) positions and one
//! broadcast weight per output channel: no im2col buffer, no packing of the input.
//!
//! The transposed convolution (`x_grad[j] = Σ_k w_jk s[k]`, stride 1) is the same kernel run on
//! the relevance padded by `(k − 1)·d − p`, with the weights flipped and their channel axes swapped
//! ([`conv::transpose_sample`](super::conv::transpose_sample)).
//!
//! Two operations share the driver ([`Op`]): the sum of products (`f32`, the convolution) and
//! the max of products over non-negative values (`f32` for `max_j |a_j w_jk|`, `f64` for the
//! Viterbi semiring's `max_k |w_jk| u_k`).
//!
//! Work is split into (band of grid tiles, block of 8 output channels) items, parallel with rayon;
//! every output is summed by one item in one fixed order (`ci`, then `ky`, then `kx`), so results
//! are bit-identical for any number of threads.

use super::simd::{SimdLevel, simd_level};
use crate::shares::ConvGeometry;
use crate::shares::WeightMap;
use crate::tensor::par;
use ndarray::ArrayView4;
use std::sync::Mutex;

/// Output channels per micro-kernel tile.
const CO_BLOCK: usize = 8;

/// Largest tile: 8 channels × 48 positions.
const ACC: usize = CO_BLOCK * 48;

/// What a micro-kernel accumulates over the steps `(ci, ky, kx)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// `acc += w · x` (a convolution).
    MulAdd,
    /// `acc = max(acc, w · x)` from 0 (max-times over non-negative values).
    MaxMul,
}

/// An element type with micro-kernels (`f32`, `f64`).
pub(crate) trait Lane:
    Copy + Default + Send + Sync + std::ops::Add<Output = Self> + 'static
{
    /// Positions per tile at the current SIMD level (three vectors).
    fn tile_len() -> usize;
    /// One tile: `acc[c·tile + i] = ⊕_(ci,t) w[(ci·T + t)·8 + c] ⊗ x[ci·plane + taps[t] + i]`.
    ///
    /// # Safety
    /// `(cin − 1)·plane + max(taps) + tile ≤ x.len()`, `w.len() = cin·taps.len()·8`, and the CPU
    /// supports the current [`simd_level`] (at least AVX2).
    unsafe fn tile(
        op: Op,
        x: &[Self],
        plane: usize,
        cin: usize,
        taps: &[usize],
        w: &[Self],
        acc: &mut [Self; ACC],
    );
    /// The padded-input buffer kept between calls for this element type (see [`PaddedInput`]).
    fn spare() -> &'static Mutex<Vec<Self>>;
}

/// `Lane` for one float type: its tile widths (AVX-512, AVX2) and its four micro-kernels.
macro_rules! lane {
    ($t:ty, $w512:expr, $w256:expr, $add512:ident, $max512:ident, $add256:ident, $max256:ident) => {
        impl Lane for $t {
            fn tile_len() -> usize {
                if simd_level() >= SimdLevel::Avx512 {
                    $w512
                } else {
                    $w256
                }
            }
            unsafe fn tile(
                op: Op,
                x: &[$t],
                plane: usize,
                cin: usize,
                taps: &[usize],
                w: &[$t],
                acc: &mut [$t; ACC],
            ) {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: forwarded from the caller.
                unsafe {
                    match (simd_level() >= SimdLevel::Avx512, op) {
                        (true, Op::MulAdd) => x86::$add512(x, plane, cin, taps, w, acc),
                        (true, Op::MaxMul) => x86::$max512(x, plane, cin, taps, w, acc),
                        (false, Op::MulAdd) => x86::$add256(x, plane, cin, taps, w, acc),
                        (false, Op::MaxMul) => x86::$max256(x, plane, cin, taps, w, acc),
                    }
                }
                #[cfg(not(target_arch = "x86_64"))]
                portable_tile(op, x, plane, cin, taps, w, acc, Self::tile_len());
            }
            fn spare() -> &'static Mutex<Vec<$t>> {
                static SPARE: Mutex<Vec<$t>> = Mutex::new(Vec::new());
                &SPARE
            }
        }
    };
}

lane!(
    f32,
    48,
    24,
    f32_add_512,
    f32_max_512,
    f32_add_256,
    f32_max_256
);
lane!(
    f64,
    24,
    12,
    f64_add_512,
    f64_max_512,
    f64_add_256,
    f64_max_256
);

/// Whether a SIMD micro-kernel is available on this CPU (else callers use the GEMM path).
pub(crate) fn available() -> bool {
    cfg!(target_arch = "x86_64") && simd_level() >= SimdLevel::Avx2
}

/// One stride-1 convolution problem: `cin → cout` channels, an input of `h × w` padded by `pad`
/// before (top, left) and `pad_end` after (bottom, right), a `kh × kw` kernel with dilation `dil`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Problem {
    pub cin: usize,
    pub cout: usize,
    pub h: usize,
    pub w: usize,
    pub pad: (usize, usize),
    pub pad_end: (usize, usize),
    pub kh: usize,
    pub kw: usize,
    pub dil: (usize, usize),
}

impl Problem {
    fn hp(&self) -> usize {
        self.h + self.pad.0 + self.pad_end.0
    }
    fn wp(&self) -> usize {
        self.w + self.pad.1 + self.pad_end.1
    }
    /// Output height (0 if the kernel does not fit).
    pub fn out_h(&self) -> usize {
        (self.hp() + 1).saturating_sub((self.kh - 1) * self.dil.0 + 1)
    }
    /// Output width (0 if the kernel does not fit).
    pub fn out_w(&self) -> usize {
        (self.wp() + 1).saturating_sub((self.kw - 1) * self.dil.1 + 1)
    }
}

/// Weights `w(co, ci, ky, kx)` packed as `[co / 8][ci][ky][kx][co % 8]`, zero-filled past `cout`.
pub(crate) fn pack_weights<E: Lane>(
    p: &Problem,
    w: impl Fn(usize, usize, usize, usize) -> E + Sync,
) -> Vec<E> {
    let blocks = p.cout.div_ceil(CO_BLOCK);
    let per_block = p.cin * p.kh * p.kw * CO_BLOCK;
    let mut packed = vec![E::default(); blocks * per_block];
    par::chunks_mut(&mut packed, per_block.max(1), &|b, block| {
        for (step, lane) in block.chunks_exact_mut(CO_BLOCK).enumerate() {
            let (ci, tap) = (step / (p.kh * p.kw), step % (p.kh * p.kw));
            let (ky, kx) = (tap / p.kw, tap % p.kw);
            for (c, v) in lane.iter_mut().enumerate() {
                let co = b * CO_BLOCK + c;
                if co < p.cout {
                    *v = w(co, ci, ky, kx);
                }
            }
        }
    });
    packed
}

/// `out[co][oy][ox] = bias[co] + ⊕ w ⊗ x` for one sample (`⊕, ⊗` by `op`): `x` is
/// `[cin][h][w]`, `out` is `[cout][out_h][out_w]`, weights from [`pack_weights`]. Call only when
/// [`available`].
pub(crate) fn conv<E: Lane>(
    op: Op,
    p: &Problem,
    packed: &[E],
    bias: Option<&[E]>,
    x: &[E],
    out: &mut [E],
) {
    assert!(x.len() == p.cin * p.h * p.w);
    let stage = |row: &mut [E], at: usize| row.copy_from_slice(&x[at..at + row.len()]);
    let emit = |dst: &mut [E], sums: &[E], co: usize, _at: usize| {
        let b = bias.map_or(E::default(), |b| b[co]);
        for (d, &s) in dst.iter_mut().zip(sums) {
            *d = s + b;
        }
    };
    conv_fused(op, p, packed, stage, out, emit);
}

/// [`conv`] with its input and output passes open, so elementwise work fuses into the copies the
/// kernel makes anyway:
///
/// - `stage(row, at)` fills `row` with the input elements `x[at..at + row.len()]` (one row of one
///   channel, `at` its flat index in `[cin][h][w]`);
/// - `emit(dst, sums, co, at)` receives the sums `⊕ w ⊗ x` of a run of outputs of channel `co`
///   starting at flat index `at` in `[cout][out_h][out_w]`, and writes `dst` (those outputs).
///
/// Every output element is emitted exactly once, from one thread. Call only when [`available`].
pub(crate) fn conv_fused<E: Lane, O: Send>(
    op: Op,
    p: &Problem,
    packed: &[E],
    stage: impl Fn(&mut [E], usize) + Sync,
    out: &mut [O],
    emit: impl Fn(&mut [O], &[E], usize, usize) + Sync,
) {
    let (hp, wp) = (p.hp(), p.wp());
    let (out_h, out_w) = (p.out_h(), p.out_w());
    assert!(out.len() == p.cout * out_h * out_w);
    assert!(packed.len() == p.cout.div_ceil(CO_BLOCK) * p.cin * p.kh * p.kw * CO_BLOCK);
    if out.is_empty() {
        return;
    }
    let tile = E::tile_len();
    let plane = hp * wp;
    // The last tile may run past the grid: the tail keeps its loads inside the buffer.
    let tail = tile + (p.kw - 1) * p.dil.1 + 16;
    let mut xp = PaddedInput::<E>::take(p.cin * plane + tail);
    // Every element is written: the zero border (the buffer may hold an earlier call's data),
    // then the staged rows.
    let (body, rest) = xp.0.split_at_mut(p.cin * plane);
    rest.fill(E::default());
    par::chunks_mut(body, plane, &|ci, dst| {
        let (top, bottom) = (p.pad.0 * wp, (p.pad.0 + p.h) * wp);
        dst[..top].fill(E::default());
        dst[bottom..].fill(E::default());
        for iy in 0..p.h {
            let row = &mut dst[(iy + p.pad.0) * wp..][..wp];
            row[..p.pad.1].fill(E::default());
            row[p.pad.1 + p.w..].fill(E::default());
            stage(&mut row[p.pad.1..][..p.w], (ci * p.h + iy) * p.w);
        }
    });
    let taps: Vec<usize> = (0..p.kh * p.kw)
        .map(|t| (t / p.kw) * p.dil.0 * wp + (t % p.kw) * p.dil.1)
        .collect();
    let grid = out_h * wp;
    let tiles = grid.div_ceil(tile);
    // A band of tiles reads its grid positions plus the kernel's reach below them, in every
    // input channel; that stays within about 1 MB (L2), so an item's weights (one channel block)
    // are reused across the band's tiles, and the band across the channel blocks.
    let halo = (p.kh - 1) * p.dil.0 * wp + (p.kw - 1) * p.dil.1;
    let bytes = std::mem::size_of::<E>() * p.cin.max(1);
    let positions = ((1usize << 20) / bytes).saturating_sub(halo);
    let tiles_per_band = (positions / tile).clamp(1, tiles);
    let bands = tiles.div_ceil(tiles_per_band);
    let co_blocks = p.cout.div_ceil(CO_BLOCK);
    let steps = p.cin * p.kh * p.kw;
    let out_ptr = SendPtr(out.as_mut_ptr());
    let geometry = Geometry {
        wp,
        grid,
        out_h,
        out_w,
        cout: p.cout,
    };
    par::for_each(bands * co_blocks, &|item| {
        let (band, cb) = (item / co_blocks, item % co_blocks);
        let w = &packed[cb * steps * CO_BLOCK..][..steps * CO_BLOCK];
        let mut acc = [E::default(); ACC];
        for t in band * tiles_per_band..((band + 1) * tiles_per_band).min(tiles) {
            let n0 = t * tile;
            micro_kernel(op, &xp.0[n0..], plane, p.cin, &taps, w, &mut acc);
            // SAFETY: item (band, cb) alone writes channels cb·8.. of the grid positions of its
            // band's tiles; `store` stays inside `out` (checked ranges, see there).
            unsafe { store(&geometry, out_ptr, &acc, tile, n0, cb * CO_BLOCK, &emit) };
        }
    });
}

/// The zero-padded input of one call, in a buffer kept for the next call (one per element type):
/// a fresh buffer of a large layer's size costs a page fault per 4 KiB on first touch, serialised
/// in the kernel, which showed up as a tenth of a γ pass and kept it from scaling across threads.
/// Buffers above [`PaddedInput::KEEP_BYTES`] are not kept.
struct PaddedInput<E: Lane>(Vec<E>);

impl<E: Lane> PaddedInput<E> {
    /// Largest buffer kept between calls (VGG-16's largest padded input is 13 MB in `f32`).
    const KEEP_BYTES: usize = 64 << 20;

    /// A buffer of `len` elements (contents unspecified).
    fn take(len: usize) -> Self {
        let mut v = std::mem::take(&mut *E::spare().lock().unwrap_or_else(|e| e.into_inner()));
        v.resize(len, E::default());
        PaddedInput(v)
    }
}

impl<E: Lane> Drop for PaddedInput<E> {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        if v.capacity() * std::mem::size_of::<E>() <= Self::KEEP_BYTES {
            let mut spare = E::spare().lock().unwrap_or_else(|e| e.into_inner());
            if v.capacity() > spare.capacity() {
                *spare = v;
            }
        }
    }
}

struct Geometry {
    wp: usize,
    grid: usize,
    out_h: usize,
    out_w: usize,
    cout: usize,
}

struct SendPtr<O>(*mut O);
impl<O> Clone for SendPtr<O> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<O> Copy for SendPtr<O> {}
// SAFETY: the pointer is only used for disjoint writes, one item per output element.
unsafe impl<O: Send> Send for SendPtr<O> {}
unsafe impl<O: Send> Sync for SendPtr<O> {}

/// Hands the valid part of a tile (`acc[c][i]`, grid positions `n0 + i`) to `emit`, one run of
/// consecutive outputs of one channel at a time.
///
/// # Safety
/// No other thread may touch the same output elements concurrently.
unsafe fn store<E: Lane, O>(
    g: &Geometry,
    out: SendPtr<O>,
    acc: &[E; ACC],
    tile: usize,
    n0: usize,
    co0: usize,
    emit: &impl Fn(&mut [O], &[E], usize, usize),
) {
    let end = (n0 + tile).min(g.grid);
    let mut n = n0;
    while n < end {
        let (oy, ox) = (n / g.wp, n % g.wp);
        let row_end = (oy * g.wp + g.wp).min(end);
        if ox < g.out_w && oy < g.out_h {
            let len = (g.out_w - ox).min(row_end - n);
            for c in 0..CO_BLOCK.min(g.cout - co0) {
                let src = &acc[c * tile + (n - n0)..][..len];
                let at = ((co0 + c) * g.out_h + oy) * g.out_w + ox;
                // SAFETY: co0 + c < cout, oy < out_h, ox + len ≤ out_w: inside `out`.
                let dst = unsafe { std::slice::from_raw_parts_mut(out.0.add(at), len) };
                emit(dst, src, co0 + c, at);
            }
        }
        n = row_end;
    }
}

/// One tile, with the bounds of every load checked first.
fn micro_kernel<E: Lane>(
    op: Op,
    x: &[E],
    plane: usize,
    cin: usize,
    taps: &[usize],
    w: &[E],
    acc: &mut [E; ACC],
) {
    let max_tap = taps.iter().copied().max().unwrap_or(0);
    assert!(cin == 0 || (cin - 1) * plane + max_tap + E::tile_len() <= x.len());
    assert!(w.len() == cin * taps.len() * CO_BLOCK);
    assert!(available());
    // SAFETY: the asserts above are the function's contract.
    unsafe { E::tile(op, x, plane, cin, taps, w, acc) }
}

/// The micro-kernel in plain Rust, for targets without the x86 kernels.
#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
fn portable_tile<E: Lane + std::ops::Mul<Output = E> + PartialOrd>(
    op: Op,
    x: &[E],
    plane: usize,
    cin: usize,
    taps: &[usize],
    w: &[E],
    acc: &mut [E; ACC],
    tile: usize,
) {
    for c in 0..CO_BLOCK {
        for i in 0..tile {
            let mut s = E::default();
            for ci in 0..cin {
                for (t, &off) in taps.iter().enumerate() {
                    let v = w[(ci * taps.len() + t) * CO_BLOCK + c] * x[ci * plane + off + i];
                    s = match op {
                        Op::MulAdd => s + v,
                        Op::MaxMul => {
                            if v > s {
                                v
                            } else {
                                s
                            }
                        }
                    };
                }
            }
            acc[c * tile + i] = s;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{ACC, CO_BLOCK};
    use std::arch::x86_64::*;

    /// Defines a micro-kernel: `CH` channels × 3 vectors of `LANES` positions in registers, run
    /// `8 / CH` times to cover the 8 channels of a weight block; `$step(w, x, acc)` is one
    /// accumulation.
    macro_rules! micro_kernel {
        ($name:ident, $feature:literal, $t:ty, $lanes:literal, $ch:literal,
         $zero:expr, $load:ident, $set1:ident, $storeu:ident, $step:expr) => {
            #[target_feature(enable = $feature)]
            pub(super) unsafe fn $name(
                x: &[$t],
                plane: usize,
                cin: usize,
                taps: &[usize],
                w: &[$t],
                acc: &mut [$t; ACC],
            ) {
                const TILE: usize = 3 * $lanes;
                let xb = x.as_ptr();
                let out = acc.as_mut_ptr();
                for half in 0..CO_BLOCK / $ch {
                    let mut a = [[$zero; 3]; $ch];
                    // SAFETY (every pointer below): the caller guarantees
                    // (cin − 1)·plane + max(taps) + TILE ≤ x.len() and w.len() = cin·taps·8.
                    let mut wp = unsafe { w.as_ptr().add(half * $ch) };
                    for ci in 0..cin {
                        let xc = unsafe { xb.add(ci * plane) };
                        for &off in taps {
                            let xo = unsafe { xc.add(off) };
                            let xv = unsafe {
                                [$load(xo), $load(xo.add($lanes)), $load(xo.add(2 * $lanes))]
                            };
                            for (c, ac) in a.iter_mut().enumerate() {
                                let wv = $set1(unsafe { *wp.add(c) });
                                for (acc, &xv) in ac.iter_mut().zip(&xv) {
                                    *acc = $step(wv, xv, *acc);
                                }
                            }
                            wp = unsafe { wp.add(CO_BLOCK) };
                        }
                    }
                    for (c, ac) in a.iter().enumerate() {
                        for (v, r) in ac.iter().enumerate() {
                            // SAFETY: (half·CH + c)·TILE + (v + 1)·LANES ≤ 8·TILE ≤ ACC.
                            unsafe { $storeu(out.add((half * $ch + c) * TILE + v * $lanes), *r) };
                        }
                    }
                }
            }
        };
    }

    micro_kernel!(
        f32_add_512,
        "avx512f",
        f32,
        16,
        8,
        _mm512_setzero_ps(),
        _mm512_loadu_ps,
        _mm512_set1_ps,
        _mm512_storeu_ps,
        |w, x, a| _mm512_fmadd_ps(w, x, a)
    );
    micro_kernel!(
        f32_max_512,
        "avx512f",
        f32,
        16,
        8,
        _mm512_setzero_ps(),
        _mm512_loadu_ps,
        _mm512_set1_ps,
        _mm512_storeu_ps,
        |w, x, a| _mm512_max_ps(a, _mm512_mul_ps(w, x))
    );
    micro_kernel!(
        f64_add_512,
        "avx512f",
        f64,
        8,
        8,
        _mm512_setzero_pd(),
        _mm512_loadu_pd,
        _mm512_set1_pd,
        _mm512_storeu_pd,
        |w, x, a| _mm512_fmadd_pd(w, x, a)
    );
    micro_kernel!(
        f64_max_512,
        "avx512f",
        f64,
        8,
        8,
        _mm512_setzero_pd(),
        _mm512_loadu_pd,
        _mm512_set1_pd,
        _mm512_storeu_pd,
        |w, x, a| _mm512_max_pd(a, _mm512_mul_pd(w, x))
    );
    micro_kernel!(
        f32_add_256,
        "avx2,fma",
        f32,
        8,
        4,
        _mm256_setzero_ps(),
        _mm256_loadu_ps,
        _mm256_set1_ps,
        _mm256_storeu_ps,
        |w, x, a| _mm256_fmadd_ps(w, x, a)
    );
    micro_kernel!(
        f32_max_256,
        "avx2,fma",
        f32,
        8,
        4,
        _mm256_setzero_ps(),
        _mm256_loadu_ps,
        _mm256_set1_ps,
        _mm256_storeu_ps,
        |w, x, a| _mm256_max_ps(a, _mm256_mul_ps(w, x))
    );
    micro_kernel!(
        f64_add_256,
        "avx2,fma",
        f64,
        4,
        4,
        _mm256_setzero_pd(),
        _mm256_loadu_pd,
        _mm256_set1_pd,
        _mm256_storeu_pd,
        |w, x, a| _mm256_fmadd_pd(w, x, a)
    );
    micro_kernel!(
        f64_max_256,
        "avx2,fma",
        f64,
        4,
        4,
        _mm256_setzero_pd(),
        _mm256_loadu_pd,
        _mm256_set1_pd,
        _mm256_storeu_pd,
        |w, x, a| _mm256_max_pd(a, _mm256_mul_pd(w, x))
    );
}

/// The forward problem of a stride-1, one-group convolution.
pub(crate) fn forward_problem(g: &ConvGeometry) -> Problem {
    Problem {
        cin: g.in_channels,
        cout: g.out_channels,
        h: g.in_h,
        w: g.in_w,
        pad: g.padding,
        pad_end: g.padding_end,
        kh: g.kh,
        kw: g.kw,
        dil: g.dilation,
    }
}

/// The transposed problem, if the direct kernel applies: the relevance grid padded by
/// `(k − 1)·d − p_begin` before and `(k − 1)·d − p_end` after (so the padding may be at most the
/// kernel's reach).
pub(crate) fn transpose_problem(g: &ConvGeometry) -> Option<Problem> {
    let reach_y = (g.kh - 1) * g.dilation.0;
    let reach_x = (g.kw - 1) * g.dilation.1;
    if g.padding.0.max(g.padding_end.0) > reach_y || g.padding.1.max(g.padding_end.1) > reach_x {
        return None;
    }
    let p = Problem {
        cin: g.out_channels,
        cout: g.in_channels,
        h: g.out_h,
        w: g.out_w,
        pad: (reach_y - g.padding.0, reach_x - g.padding.1),
        pad_end: (reach_y - g.padding_end.0, reach_x - g.padding_end.1),
        kh: g.kh,
        kw: g.kw,
        dil: g.dilation,
    };
    (p.out_h() == g.in_h && p.out_w() == g.in_w).then_some(p)
}

/// The packed weights `map(w)` of the forward problem.
pub(crate) fn pack_forward(p: &Problem, weight: &ArrayView4<'_, f32>, map: WeightMap) -> Vec<f32> {
    let w = weight.as_standard_layout();
    let w = w.as_slice().expect("a standard-layout array");
    let (cin, kh, kw) = (p.cin, p.kh, p.kw);
    pack_weights(p, |co, ci, ky, kx| {
        map.apply(w[((co * cin + ci) * kh + ky) * kw + kx])
    })
}

/// The packed weights `map(w')` of the transposed problem:
/// `w'[ci][co][ky][kx] = w[co][ci][kh−1−ky][kw−1−kx]`.
pub(crate) fn pack_transposed(
    g: &ConvGeometry,
    p: &Problem,
    weight: &ArrayView4<'_, f32>,
    map: WeightMap,
) -> Vec<f32> {
    let w = weight.as_standard_layout();
    let w = w.as_slice().expect("a standard-layout array");
    let (cin, kh, kw) = (g.in_channels, g.kh, g.kw);
    pack_weights(p, |ci, co, ky, kx| {
        map.apply(w[((co * cin + ci) * kh + (kh - 1 - ky)) * kw + (kw - 1 - kx)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(op: Op, p: &Problem, w: &[f32], x: &[f32]) -> Vec<f64> {
        let (oh, ow) = (p.out_h(), p.out_w());
        let mut out = vec![0.0f64; p.cout * oh * ow];
        for co in 0..p.cout {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = 0.0f64;
                    for ci in 0..p.cin {
                        for ky in 0..p.kh {
                            for kx in 0..p.kw {
                                let iy = (oy + ky * p.dil.0) as isize - p.pad.0 as isize;
                                let ix = (ox + kx * p.dil.1) as isize - p.pad.1 as isize;
                                if iy < 0 || ix < 0 || iy >= p.h as isize || ix >= p.w as isize {
                                    continue;
                                }
                                let wv = w[((co * p.cin + ci) * p.kh + ky) * p.kw + kx];
                                let xv = x[(ci * p.h + iy as usize) * p.w + ix as usize];
                                let v = f64::from(wv) * f64::from(xv);
                                s = match op {
                                    Op::MulAdd => s + v,
                                    Op::MaxMul => s.max(v),
                                };
                            }
                        }
                    }
                    out[(co * oh + oy) * ow + ox] = s;
                }
            }
        }
        out
    }

    #[test]
    fn direct_matches_naive_loops() {
        if !available() {
            return;
        }
        let mut seed = 7u64;
        let mut rnd = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        for &(cin, cout, h, w, pad, pad_end, k, dil) in &[
            (3, 5, 7, 9, (1, 1), (1, 1), (3, 3), (1, 1)),
            (4, 17, 13, 11, (0, 2), (0, 2), (3, 2), (2, 1)),
            (9, 8, 30, 31, (2, 0), (2, 0), (5, 3), (1, 2)),
            (2, 3, 1, 1, (1, 1), (1, 1), (3, 3), (1, 1)),
            (16, 9, 5, 70, (1, 1), (1, 1), (1, 1), (1, 1)),
            // Asymmetric: TensorFlow "same" (0 before, 1 after) and the reverse, and mixed.
            (3, 9, 8, 10, (0, 0), (1, 1), (2, 2), (1, 1)),
            (2, 5, 6, 7, (1, 2), (0, 0), (3, 3), (1, 1)),
            (4, 8, 9, 5, (0, 3), (2, 1), (3, 3), (2, 1)),
        ] {
            let p = Problem {
                cin,
                cout,
                h,
                w,
                pad,
                pad_end,
                kh: k.0,
                kw: k.1,
                dil,
            };
            let wt: Vec<f32> = (0..cout * cin * k.0 * k.1).map(|_| rnd()).collect();
            let x: Vec<f32> = (0..cin * h * w).map(|_| rnd()).collect();
            let at = |co: usize, ci: usize, ky: usize, kx: usize| {
                wt[((co * cin + ci) * k.0 + ky) * k.1 + kx]
            };
            let n_out = cout * p.out_h() * p.out_w();
            let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
            // Sum of products, f32 and f64.
            let want = naive(Op::MulAdd, &p, &wt, &x);
            let mut out = vec![f32::NAN; n_out];
            conv(Op::MulAdd, &p, &pack_weights(&p, at), None, &x, &mut out);
            let mut out64 = vec![f64::NAN; n_out];
            let packed64 = pack_weights(&p, |a, b, c, d| f64::from(at(a, b, c, d)));
            conv(Op::MulAdd, &p, &packed64, None, &x64, &mut out64);
            for (i, ((a, a64), b)) in out.iter().zip(&out64).zip(&want).enumerate() {
                let a = f64::from(*a);
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{p:?} at {i}: {a} vs {b}"
                );
                assert!(
                    (a64 - b).abs() <= 1e-12 * (1.0 + b.abs()),
                    "{p:?} f64 at {i}"
                );
            }
            // Max of products over non-negative values, f32 and f64: exact.
            let wa: Vec<f32> = wt.iter().map(|v| v.abs()).collect();
            let xa: Vec<f32> = x.iter().map(|v| v.abs()).collect();
            let want = naive(Op::MaxMul, &p, &wa, &xa);
            let packed = pack_weights(&p, |a, b, c, d| at(a, b, c, d).abs());
            conv(Op::MaxMul, &p, &packed, None, &xa, &mut out);
            let xa64: Vec<f64> = xa.iter().map(|&v| f64::from(v)).collect();
            let packed64 = pack_weights(&p, |a, b, c, d| f64::from(at(a, b, c, d).abs()));
            conv(Op::MaxMul, &p, &packed64, None, &xa64, &mut out64);
            for (i, ((a, a64), b)) in out.iter().zip(&out64).zip(&want).enumerate() {
                assert_eq!(*a, *b as f32, "{p:?} max at {i}");
                assert_eq!(a64, b, "{p:?} f64 max at {i}");
            }
        }
    }

    #[test]
    fn stale_data_in_the_kept_buffer_never_reaches_the_padding() {
        if !available() {
            return;
        }
        // Three paddings: top/bottom rows, left/right columns, both.
        for pad in [(2, 0), (0, 3), (1, 2)] {
            let p = Problem {
                cin: 3,
                cout: 4,
                h: 6,
                w: 5,
                pad,
                pad_end: pad,
                kh: 3,
                kw: 3,
                dil: (1, 1),
            };
            let wt: Vec<f32> = (0..4 * 3 * 9).map(|i| (i % 7) as f32 - 3.0).collect();
            let x: Vec<f32> = (0..3 * 6 * 5).map(|i| (i % 5) as f32 - 1.5).collect();
            let want = naive(Op::MulAdd, &p, &wt, &x);
            // The buffer an earlier, larger call left behind, full of NaN.
            *f32::spare().lock().unwrap() = vec![f32::NAN; 1 << 14];
            let mut out = vec![0.0f32; want.len()];
            let packed = pack_weights(&p, |co, ci, ky, kx| wt[((co * 3 + ci) * 3 + ky) * 3 + kx]);
            conv(Op::MulAdd, &p, &packed, None, &x, &mut out);
            for (i, (a, b)) in out.iter().zip(&want).enumerate() {
                assert_eq!(f64::from(*a), *b, "{p:?} at {i}");
            }
        }
    }
}
