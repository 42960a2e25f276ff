//! Fast convolution kernels (groups = 1).
//!
//! - Forward and transposed convolution with stride 1 as nine (kh·kw) shifted GEMMs over a
//!   zero-padded copy of the input: output position `(oy, ox)` is computed on the padded-width grid
//!   `oy·Wp + ox`, so the taps of kernel offset `(ky, kx)` form one contiguous strided matrix. The
//!   `Wp − W_out` junk columns per row are discarded. No im2col buffer.
//! - K-LRP relevance gathers, for every input `j`, over the outputs it feeds, streaming the output
//!   channels `co` contiguously: weights are transposed once per call to `[ky][kx][ci][co]`, output
//!   factors and relevance to channels-last `[oy][ox][co]`. Parallel over input channels.

use super::gemm::{Mat, gemm, gemm_with_threads};
use super::lanes::{accumulate_lanes, fold_lanes, fused_lanes};
use crate::conversion::Conversion;
use crate::error::Result;
use crate::semiring::Semiring;
use crate::shares::ConvGeometry;
use crate::shares::WeightMap;
use crate::tensor::par;
use ndarray::ArrayView4;
use rayon::prelude::*;

/// Whether the GEMM path applies (stride 1, one group).
pub(crate) fn gemm_applies(g: &ConvGeometry) -> bool {
    g.stride == (1, 1) && g.groups == 1
}

struct Padded {
    wp: usize,
    /// Elements per padded channel plane.
    plane: usize,
    /// Buffer length: all planes plus the tail the last shifted view may touch.
    len: usize,
}

fn padded(g: &ConvGeometry) -> Padded {
    let hp = g.in_h + g.padding.0 + g.padding_end.0;
    let wp = g.in_w + g.padding.1 + g.padding_end.1;
    let plane = hp * wp;
    Padded {
        wp,
        plane,
        len: g.in_channels * plane + (g.kw - 1) * g.dilation.1 + 1,
    }
}

/// Columns of the padded-width output grid per GEMM: the column block (`K × cols` floats, `K`
/// = `C_in·kh·kw`) stays within about 2 MB so it is reused from cache.
fn chunk_columns(k: usize, n: usize) -> usize {
    ((1usize << 19) / k.max(1)).clamp(64, n.max(64))
}

/// The zero-padded copy of one sample, with the tail the last shifted view may touch.
fn pad_input(g: &ConvGeometry, p: &Padded, x: &[f32]) -> Vec<f32> {
    let mut xp = vec![0.0f32; p.len];
    xp[..g.in_channels * p.plane]
        .par_chunks_mut(p.plane)
        .enumerate()
        .for_each(|(ci, plane)| {
            for iy in 0..g.in_h {
                let src = &x[(ci * g.in_h + iy) * g.in_w..][..g.in_w];
                let dst = (iy + g.padding.0) * p.wp + g.padding.1;
                plane[dst..dst + g.in_w].copy_from_slice(src);
            }
        });
    xp
}

/// Forward convolution of one sample `x` (`[C_in, H, W]` flat) with mapped weights into `out`
/// (`[C_out, H_out, W_out]` flat); `bias` per output channel, already mapped.
///
/// Output positions are computed on the padded-width grid `n = oy·Wp + ox`; for a block of grid
/// columns the im2col block `B[(ci, ky, kx), n] = xp[ci][n + ky·dh·Wp + kx·dw]` is gathered and
/// multiplied by the weight matrix `[C_out × C_in·kh·kw]` in one GEMM.
pub(crate) fn forward_sample(
    g: &ConvGeometry,
    weight: &[f32],
    bias: Option<&[f32]>,
    x: &[f32],
    out: &mut [f32],
) -> Result<()> {
    let p = padded(g);
    let xp = pad_input(g, &p, x);
    let taps = g.kh * g.kw;
    let k = g.in_channels * taps;
    let m = g.out_channels;
    // Blocks of whole output rows, sized from the problem alone (never from the thread count, so
    // the GEMM sums in the same order, and results are bit-identical, for any number of threads).
    let threads = rayon::current_num_threads().max(1);
    let rows = (chunk_columns(k, g.out_h * p.wp) / p.wp).clamp(1, g.out_h.div_ceil(4).max(1));
    let a = Mat {
        data: weight,
        offset: 0,
        rows: m,
        cols: k,
        rs: k,
        cs: 1,
    };
    let blocks: Vec<usize> = (0..g.out_h).step_by(rows).collect();
    let parallel_blocks = blocks.len() >= threads;
    let results: Vec<Result<(usize, usize, Vec<f32>)>> = blocks
        .par_iter()
        .map_init(Vec::new, |cols: &mut Vec<f32>, &oy0| {
            let nr = rows.min(g.out_h - oy0);
            let w = nr * p.wp;
            let n0 = oy0 * p.wp;
            // Every element is overwritten below; the buffer is reused across blocks.
            cols.resize(k * w, 0.0);
            for ci in 0..g.in_channels {
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let row = (ci * taps + ky * g.kw + kx) * w;
                        let src = ci * p.plane + ky * g.dilation.0 * p.wp + kx * g.dilation.1 + n0;
                        cols[row..row + w].copy_from_slice(&xp[src..src + w]);
                    }
                }
            }
            let b = Mat {
                data: cols,
                offset: 0,
                rows: k,
                cols: w,
                rs: w,
                cs: 1,
            };
            let mut c = vec![0.0f32; m * w];
            let t = if parallel_blocks { 1 } else { threads };
            gemm_with_threads(&mut c, 0, w, false, a, b, t)?;
            Ok((oy0, nr, c))
        })
        .collect();
    for r in results {
        let (oy0, nr, c) = r?;
        let w = nr * p.wp;
        for co in 0..m {
            let b = bias.map_or(0.0, |b| b[co]);
            for r in 0..nr {
                let src = &c[co * w + r * p.wp..][..g.out_w];
                let dst = &mut out[(co * g.out_h + oy0 + r) * g.out_w..][..g.out_w];
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = s + b;
                }
            }
        }
    }
    Ok(())
}

/// Transposed convolution of one sample: `x_grad[j] = Σ_k w_jk s[k]` (the gradient of the forward
/// pass with respect to its input), `s` shaped `[C_out, H_out, W_out]`, result `[C_in, H, W]`.
///
/// For a block of grid columns, one GEMM `Wᵀ · S` gives the column block, which is scattered back
/// (col2im) into the padded input.
pub(crate) fn transpose_sample(
    g: &ConvGeometry,
    weight: &[f32],
    s: &[f32],
    x_grad: &mut [f32],
) -> Result<()> {
    let p = padded(g);
    let n = g.out_h * p.wp;
    let taps = g.kh * g.kw;
    let k = g.in_channels * taps;
    let nc = chunk_columns(k, n);
    let mut grid = vec![0.0f32; g.out_channels * n];
    for co in 0..g.out_channels {
        for oy in 0..g.out_h {
            let src = &s[(co * g.out_h + oy) * g.out_w..][..g.out_w];
            grid[co * n + oy * p.wp..][..g.out_w].copy_from_slice(src);
        }
    }
    let mut xp = vec![0.0f32; p.len];
    let mut cols = vec![0.0f32; k * nc];
    // Wᵀ: [C_in·kh·kw × C_out].
    let a = Mat {
        data: weight,
        offset: 0,
        rows: k,
        cols: g.out_channels,
        rs: 1,
        cs: k,
    };
    for n0 in (0..n).step_by(nc) {
        let w = nc.min(n - n0);
        let b = Mat {
            data: &grid,
            offset: n0,
            rows: g.out_channels,
            cols: w,
            rs: n,
            cs: 1,
        };
        gemm(&mut cols, 0, nc, false, a, b)?;
        // col2im, parallel over input channels: each channel's plane is written by its own rows
        // only. A row's last columns may reach past its plane; they come from the junk grid
        // columns (zero relevance), so they are exactly 0 and are left out.
        let cols = &cols;
        xp[..g.in_channels * p.plane]
            .par_chunks_mut(p.plane)
            .enumerate()
            .for_each(|(ci, plane)| {
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let row = (ci * taps + ky * g.kw + kx) * nc;
                        let dst = ky * g.dilation.0 * p.wp + kx * g.dilation.1 + n0;
                        let len = w.min(p.plane.saturating_sub(dst));
                        for (d, &c) in plane[dst..dst + len].iter_mut().zip(&cols[row..row + len]) {
                            *d += c;
                        }
                    }
                }
            });
    }
    for ci in 0..g.in_channels {
        for iy in 0..g.in_h {
            let src = ci * p.plane + (iy + g.padding.0) * p.wp + g.padding.1;
            x_grad[(ci * g.in_h + iy) * g.in_w..][..g.in_w].copy_from_slice(&xp[src..src + g.in_w]);
        }
    }
    Ok(())
}

/// `[C, H, W]` → `[H, W, C]`, parallel over positions.
fn to_channels_last<T: Copy + Send + Sync>(x: &[T], c: usize, hw: usize) -> Vec<T> {
    // Collected in parallel straight into place (`vec![fill; n]` of a semiring value would fill
    // on one thread first).
    let c = c.max(1);
    (0..x.len())
        .into_par_iter()
        .with_min_len(c * 64)
        .map(|i| x[(i % c) * hw + i / c])
        .collect()
}

/// The weights `[co][ci][ky][kx]` mapped by `map` and transposed to `[ky][kx][ci][co]`.
fn transposed_weights(g: &ConvGeometry, weight: &ArrayView4<'_, f32>, map: WeightMap) -> Vec<f32> {
    let (cin, cout) = (g.in_channels, g.out_channels);
    let w = weight.as_standard_layout();
    let w = w.as_slice().expect("a standard-layout array");
    let taps = g.kh * g.kw;
    let mut wt = vec![0.0f32; taps * cin * cout];
    wt.par_chunks_mut(cout).enumerate().for_each(|(row, out)| {
        let (tap, ci) = (row / cin, row % cin);
        for (co, o) in out.iter_mut().enumerate() {
            *o = map.apply(w[(co * cin + ci) * taps + tap]);
        }
    });
    wt
}

/// One share term, per sample: input factor (NCHW), output factor (channels-last).
pub(crate) struct ConvTerm<'a> {
    pub p: &'a [f32],
    pub map: WeightMap,
    pub q: &'a [f32],
}

/// What one sample's relevance pass through a convolution reads.
struct GatherCtx<'a, K> {
    g: &'a ConvGeometry,
    /// Per term: mapped weights `[ky][kx][ci][co]`.
    wts: &'a [Vec<f32>],
    /// Per term: output factors `[oy][ox][co]`.
    q_cl: &'a [Vec<f32>],
    /// Per term: input factors `[ci][iy][ix]`.
    ps: &'a [&'a [f32]],
    /// Relevance `[oy][ox][co]`.
    r_cl: &'a [K],
    /// Output positions with any non-zero relevance.
    live: &'a [bool],
    skip_zero: bool,
}

/// The relevance of input channels `c0 .. c0 + nc`, rows `y0 .. y0 + ny`, into `out`
/// (`[nc][ny][in_w]`). For every input pixel and kernel tap, the output factors and relevance of
/// the tap's output position are loaded once and used for every channel of the block.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gather_block<K: Semiring, T: Conversion<K> + ?Sized>(
    c: &GatherCtx<'_, K>,
    theta: &T,
    c0: usize,
    nc: usize,
    y0: usize,
    ny: usize,
    out: &mut [K],
    dbuf: &mut [f32],
    acc: &mut [K],
) {
    let g = c.g;
    let (cin, cout) = (g.in_channels, g.out_channels);
    let hw_in = g.in_h * g.in_w;
    let nt = c.ps.len().min(8);
    let mut pv = [[0.0f32; 8]; MAX_BLOCK];
    let mut active = [false; MAX_BLOCK];
    for iy in y0..y0 + ny {
        for ix in 0..g.in_w {
            let mut any_active = false;
            for b in 0..nc {
                let j = (c0 + b) * hw_in + iy * g.in_w + ix;
                let mut any = false;
                for (v, p) in pv[b].iter_mut().zip(c.ps) {
                    *v = p[j];
                    any |= *v != 0.0;
                }
                active[b] = any || !c.skip_zero;
                any_active |= active[b];
            }
            if !any_active {
                continue;
            }
            acc[..nc * cout].fill(K::zero());
            // Channels whose sum reached the ⊕-absorbing top (⊤ for Boolean): done early.
            let mut topped = [false; MAX_BLOCK];
            for ky in 0..g.kh {
                if K::top().is_some() && ky > 0 {
                    for b in 0..nc {
                        if active[b] && acc[b * cout..(b + 1) * cout].iter().any(K::is_top) {
                            active[b] = false;
                            topped[b] = true;
                        }
                    }
                    if !active[..nc].contains(&true) {
                        break;
                    }
                }
                let num = (iy + g.padding.0) as isize - (ky * g.dilation.0) as isize;
                if num < 0 || !(num as usize).is_multiple_of(g.stride.0) {
                    continue;
                }
                let oy = num as usize / g.stride.0;
                if oy >= g.out_h {
                    continue;
                }
                for kx in 0..g.kw {
                    let num = (ix + g.padding.1) as isize - (kx * g.dilation.1) as isize;
                    if num < 0 || !(num as usize).is_multiple_of(g.stride.1) {
                        continue;
                    }
                    let ox = num as usize / g.stride.1;
                    if ox >= g.out_w || !c.live[oy * g.out_w + ox] {
                        continue;
                    }
                    let qbase = (oy * g.out_w + ox) * cout;
                    let r = &c.r_cl[qbase..qbase + cout];
                    for b in 0..nc {
                        if !active[b] {
                            continue;
                        }
                        let wbase = ((ky * g.kw + kx) * cin + c0 + b) * cout;
                        let acc = &mut acc[b * cout..(b + 1) * cout];
                        if let ([wt], [q]) = (c.wts, c.q_cl) {
                            fused_lanes(
                                theta,
                                pv[b][0],
                                &wt[wbase..wbase + cout],
                                &q[qbase..qbase + cout],
                                r,
                                acc,
                            );
                            continue;
                        }
                        dbuf.fill(0.0);
                        for ((wt, q), &p) in c.wts.iter().zip(c.q_cl).zip(&pv[b][..nt]) {
                            let w = &wt[wbase..wbase + cout];
                            let q = &q[qbase..qbase + cout];
                            for ((d, &w), &q) in dbuf.iter_mut().zip(w).zip(q) {
                                *d += p * w * q;
                            }
                        }
                        accumulate_lanes(theta, dbuf, r, acc);
                    }
                }
            }
            for b in 0..nc {
                let at = (b * ny + (iy - y0)) * g.in_w + ix;
                if topped[b] {
                    out[at] = K::top().unwrap_or_else(K::zero);
                } else if active[b] {
                    out[at] = fold_lanes(&acc[b * cout..(b + 1) * cout]);
                }
            }
        }
    }
}

/// Largest channel block of [`gather_block`].
const MAX_BLOCK: usize = 16;

/// Bytes of output factors and relevance one gather task reads (its band of output rows), small
/// enough to stay in a core's L2 cache (2 MiB on the machines measured in `docs/benchmarks.md`)
/// while every channel block of the task reuses them.
const BAND_BYTES: usize = 256 * 1024;

/// Output factors and relevance of a whole sample up to this size are read by every channel
/// block from L2 anyway: tasks are then single channel blocks (each block's weights read once).
const FIT_BYTES: usize = 1536 * 1024;

multiversion! {
    fn gather_block_simd[K: Semiring, T: Conversion<K> + ?Sized](
        c: &GatherCtx<'_, K>,
        theta: &T,
        c0: usize,
        nc: usize,
        y0: usize,
        ny: usize,
        out: &mut [K],
        dbuf: &mut [f32],
        acc: &mut [K]
    ) => gather_block
}

/// K-LRP relevance through a convolution for a batch of `n` samples (groups = 1):
/// `R_in[j] = ⊕_k Θ(Σ_t p_t[j] g_t(w_jk) q_t[k]) ⊗ R_out[k]`.
///
/// At most eight share terms (every rule has at most four).
pub(crate) fn relevance<K: Semiring, T: Conversion<K> + ?Sized>(
    g: &ConvGeometry,
    weight: &ArrayView4<'_, f32>,
    terms: &[ConvTerm<'_>],
    theta: &T,
    r_out: &[K],
    n: usize,
) -> Vec<K> {
    relevance_in_bands(g, weight, terms, theta, r_out, n, (BAND_BYTES, FIT_BYTES))
}

/// [`relevance`] with the cache budgets ([`BAND_BYTES`], [`FIT_BYTES`]) as a parameter (the tests
/// shrink them to exercise the banded split on small layers).
fn relevance_in_bands<K: Semiring, T: Conversion<K> + ?Sized>(
    g: &ConvGeometry,
    weight: &ArrayView4<'_, f32>,
    terms: &[ConvTerm<'_>],
    theta: &T,
    r_out: &[K],
    n: usize,
    (band_bytes, fit_bytes): (usize, usize),
) -> Vec<K> {
    let (cin, cout) = (g.in_channels, g.out_channels);
    let (hw_in, hw_out) = (g.in_h * g.in_w, g.out_h * g.out_w);
    let (n_in, n_out) = (cin * hw_in, cout * hw_out);
    let wts: Vec<Vec<f32>> = terms
        .iter()
        .map(|t| transposed_weights(g, weight, t.map))
        .collect();
    let skip_zero = theta.maps_zero_to_zero();
    let mut r_in = super::filled(n * n_in, K::zero());
    for s in 0..n {
        let r_cl = to_channels_last(&r_out[s * n_out..(s + 1) * n_out], cout, hw_out);
        let q_cl: Vec<Vec<f32>> = terms
            .iter()
            .map(|t| to_channels_last(&t.q[s * n_out..(s + 1) * n_out], cout, hw_out))
            .collect();
        let ps: Vec<&[f32]> = terms
            .iter()
            .map(|t| &t.p[s * n_in..(s + 1) * n_in])
            .collect();
        // Output positions whose relevance is zero in every channel contribute nothing
        // (`Θ(d) ⊗ 0 = 0`): skip them.
        let width = cout.max(1);
        let live: Vec<bool> = par::map(r_cl.len() / width, &|i| {
            r_cl[i * width..][..width].iter().any(|r| !r.is_zero())
        });
        let ctx = GatherCtx {
            g,
            wts: &wts,
            q_cl: &q_cl,
            ps: &ps,
            r_cl: &r_cl,
            live: &live,
            skip_zero,
        };
        // Tasks: bands of input rows × groups of channel blocks. When the output factors and
        // relevance of the whole sample fit a core's L2 cache, every task
        // is one channel block (each block's weights are read once), with rows split only if
        // blocks are too few for the threads. Otherwise a task is a band of rows whose output
        // rows fit L2, and every channel block of its group reuses them from there.
        let block = (2048 / cout.max(1)).clamp(1, MAX_BLOCK).min(cin).max(1);
        let n_blocks = cin.div_ceil(block);
        let threads = rayon::current_num_threads().max(1);
        let row_bytes = g.out_w * cout * (terms.len() * size_of::<f32>() + size_of::<K>());
        let halo = g.kh.saturating_sub(1) * g.dilation.0;
        let band_rows = (band_bytes / row_bytes.max(1)).saturating_sub(halo).max(1);
        let fits = row_bytes.saturating_mul(g.out_h) <= fit_bytes;
        let (band, group) = if fits || band_rows >= g.in_h {
            let bands = (4 * threads).div_ceil(n_blocks).clamp(1, g.in_h.max(1));
            (g.in_h.div_ceil(bands).max(1), block)
        } else {
            let n_bands = g.in_h.div_ceil(band_rows);
            let n_groups = (4 * threads).div_ceil(n_bands).clamp(1, n_blocks);
            (band_rows, n_blocks.div_ceil(n_groups) * block)
        };
        let n_bands = g.in_h.div_ceil(band);
        let n_groups = cin.div_ceil(group);
        let tasks: Vec<(usize, usize)> = (0..n_bands)
            .flat_map(|y| (0..n_groups).map(move |gi| (gi * group, y * band)))
            .collect();
        let results: Vec<Vec<K>> = par::map_init(
            tasks.len(),
            &|| (vec![0.0f32; cout], vec![K::zero(); MAX_BLOCK * cout]),
            &|(dbuf, acc), task| {
                let (cg, y0) = tasks[task];
                let ncg = group.min(cin - cg);
                let ny = band.min(g.in_h - y0);
                let mut out = vec![K::zero(); ncg * ny * g.in_w];
                for c0 in (cg..cg + ncg).step_by(block) {
                    let nc = block.min(cg + ncg - c0);
                    let at = (c0 - cg) * ny * g.in_w;
                    let out = &mut out[at..at + nc * ny * g.in_w];
                    gather_block_simd(&ctx, theta, c0, nc, y0, ny, out, dbuf, acc);
                }
                out
            },
        );
        // Each task's result is `[channel][row][column]`; copy it into the input planes.
        let r_in_s = &mut r_in[s * n_in..(s + 1) * n_in];
        par::chunks_mut(r_in_s, hw_in.max(1), &|ch, plane| {
            let gi = ch / group;
            for yi in 0..n_bands {
                let y0 = yi * band;
                let ny = band.min(g.in_h - y0);
                let len = ny * g.in_w;
                let src = &results[yi * n_groups + gi][(ch - gi * group) * len..][..len];
                plane[y0 * g.in_w..y0 * g.in_w + len].copy_from_slice(src);
            }
        });
    }
    r_in
}

/// One output row `oy` of `max_j |x_j w_jk|`, channels-last (`[ox][co]`): every weight row is
/// loaded once per output row.
#[inline(always)]
fn max_abs_row(g: &ConvGeometry, wt: &[f32], xs: &[f32], oy: usize, row: &mut [f32]) {
    let (cin, cout) = (g.in_channels, g.out_channels);
    let hw_in = g.in_h * g.in_w;
    for ky in 0..g.kh {
        let iy = (oy * g.stride.0 + ky * g.dilation.0) as isize - g.padding.0 as isize;
        if iy < 0 || iy >= g.in_h as isize {
            continue;
        }
        let iy = iy as usize;
        for kx in 0..g.kw {
            for ci in 0..cin {
                let w = &wt[((ky * g.kw + kx) * cin + ci) * cout..][..cout];
                let xrow = &xs[ci * hw_in + iy * g.in_w..][..g.in_w];
                for ox in 0..g.out_w {
                    let ix = (ox * g.stride.1 + kx * g.dilation.1) as isize - g.padding.1 as isize;
                    if ix < 0 || ix >= g.in_w as isize {
                        continue;
                    }
                    // No test for a = 0: a branch per tap costs more than the lanes it saves.
                    let a = xrow[ix as usize].abs();
                    let m = &mut row[ox * cout..(ox + 1) * cout];
                    for (m, &w) in m.iter_mut().zip(w) {
                        *m = m.max(a * w);
                    }
                }
            }
        }
    }
}

multiversion! {
    fn max_abs_row_simd[](g: &ConvGeometry, wt: &[f32], xs: &[f32], oy: usize, row: &mut [f32]) => max_abs_row
}

/// `max_j |x_j w_jk|` for a batch (`x` flat NCHW), result flat NCHW.
pub(crate) fn max_abs_forward(
    g: &ConvGeometry,
    weight: &ArrayView4<'_, f32>,
    x: &[f32],
    n: usize,
) -> Vec<f32> {
    let (cin, cout) = (g.in_channels, g.out_channels);
    let (hw_in, hw_out) = (g.in_h * g.in_w, g.out_h * g.out_w);
    let wt = transposed_weights(g, weight, WeightMap::Abs);
    let mut out = vec![0.0f32; n * cout * hw_out];
    for s in 0..n {
        let xs = &x[s * cin * hw_in..(s + 1) * cin * hw_in];
        let mut cl = vec![0.0f32; hw_out * cout];
        cl.par_chunks_mut(g.out_w * cout)
            .enumerate()
            .for_each(|(oy, row)| max_abs_row_simd(g, &wt, xs, oy, row));
        let o = &mut out[s * cout * hw_out..(s + 1) * cout * hw_out];
        for p in 0..hw_out {
            for co in 0..cout {
                o[co * hw_out + p] = cl[p * cout + co];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometries() -> Vec<ConvGeometry> {
        let mut v = Vec::new();
        for &(kh, kw) in &[(1, 1), (3, 2), (2, 3), (3, 3)] {
            for &(dh, dw) in &[(1, 1), (2, 1), (1, 2), (2, 2)] {
                for &((ph, pw), (eh, ew)) in &[
                    ((0, 0), (0, 0)),
                    ((1, 1), (1, 1)),
                    ((2, 0), (2, 0)),
                    ((0, 2), (0, 2)),
                    ((0, 0), (1, 1)),
                    ((1, 0), (0, 2)),
                ] {
                    for &(h, w) in &[(3, 2), (4, 6), (6, 3), (5, 5)] {
                        let (hp, wp) = (h + ph + eh, w + pw + ew);
                        let (sh, sw) = (dh * (kh - 1) + 1, dw * (kw - 1) + 1);
                        if hp < sh || wp < sw {
                            continue;
                        }
                        for (cin, cout) in [(2, 3), (1, 1), (1, 4), (3, 1)] {
                            v.push(ConvGeometry {
                                in_channels: cin,
                                out_channels: cout,
                                groups: 1,
                                in_h: h,
                                in_w: w,
                                out_h: hp - sh + 1,
                                out_w: wp - sw + 1,
                                kh,
                                kw,
                                stride: (1, 1),
                                padding: (ph, pw),
                                padding_end: (eh, ew),
                                dilation: (dh, dw),
                            });
                        }
                    }
                }
            }
        }
        v
    }

    /// Forward and transposed GEMM convolutions against the four nested loops.
    #[test]
    fn shifted_gemm_matches_direct_loops() {
        for g in geometries() {
            let wlen = g.out_channels * g.in_channels * g.kh * g.kw;
            let w: Vec<f32> = (0..wlen).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
            let x: Vec<f32> = (0..g.in_channels * g.in_h * g.in_w)
                .map(|i| ((i * 5) % 7) as f32 - 3.0)
                .collect();
            let s: Vec<f32> = (0..g.out_channels * g.out_h * g.out_w)
                .map(|i| ((i * 3) % 5) as f32 - 2.0)
                .collect();
            let mut y = vec![0.0f32; s.len()];
            forward_sample(&g, &w, None, &x, &mut y).unwrap();
            let mut gx = vec![0.0f32; x.len()];
            transpose_sample(&g, &w, &s, &mut gx).unwrap();
            let mut y_ref = vec![0.0f32; s.len()];
            let mut gx_ref = vec![0.0f32; x.len()];
            for co in 0..g.out_channels {
                for oy in 0..g.out_h {
                    for ox in 0..g.out_w {
                        let k = (co * g.out_h + oy) * g.out_w + ox;
                        for ci in 0..g.in_channels {
                            for ky in 0..g.kh {
                                for kx in 0..g.kw {
                                    let iy =
                                        (oy + ky * g.dilation.0) as isize - g.padding.0 as isize;
                                    let ix =
                                        (ox + kx * g.dilation.1) as isize - g.padding.1 as isize;
                                    if iy < 0
                                        || ix < 0
                                        || iy >= g.in_h as isize
                                        || ix >= g.in_w as isize
                                    {
                                        continue;
                                    }
                                    let j = (ci * g.in_h + iy as usize) * g.in_w + ix as usize;
                                    let wv = w[((co * g.in_channels + ci) * g.kh + ky) * g.kw + kx];
                                    y_ref[k] += wv * x[j];
                                    gx_ref[j] += wv * s[k];
                                }
                            }
                        }
                    }
                }
            }
            assert_eq!(y, y_ref, "forward {g:?}");
            assert_eq!(gx, gx_ref, "transpose {g:?}");
        }
    }

    /// The gather (bands of rows × groups of channel blocks) against the plain sum
    /// `R_in[j] = Σ_k [|p_j w_jk q_k| > θ] · R_out[k]`, exactly, for 1, 2 and 3 threads and three
    /// cache budgets (which change how the work is split), with a channel count spanning several
    /// channel blocks.
    #[test]
    fn banded_gather_matches_plain_sum_for_any_thread_count() {
        use crate::conversion::AbsThreshold;
        use crate::semiring::Counting;
        let g = ConvGeometry {
            in_channels: 37,
            out_channels: 5,
            groups: 1,
            in_h: 11,
            in_w: 6,
            out_h: 11,
            out_w: 6,
            kh: 3,
            kw: 3,
            stride: (1, 1),
            padding: (1, 1),
            padding_end: (1, 1),
            dilation: (1, 1),
        };
        let w = ndarray::Array4::from_shape_fn((5, 37, 3, 3), |(a, b, c, d)| {
            ((a * 7 + b * 3 + c * 5 + d) % 9) as f32 - 4.0
        });
        let n_in = 37 * 11 * 6;
        let n_out = 5 * 11 * 6;
        let p: Vec<f32> = (0..n_in).map(|i| ((i * 5) % 4) as f32).collect();
        let q: Vec<f32> = (0..n_out).map(|i| 0.25 + (i % 3) as f32).collect();
        let r: Vec<Counting> = (0..n_out).map(|i| Counting((i % 4) as u64)).collect();
        let theta = AbsThreshold::new(2.5).unwrap();
        let mut expected = vec![0u64; n_in];
        for co in 0..5 {
            for oy in 0..11 {
                for ox in 0..6 {
                    let k = (co * 11 + oy) * 6 + ox;
                    for ci in 0..37 {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (iy, ix) = (oy + ky, ox + kx);
                                if iy < 1 || ix < 1 || iy > 11 || ix > 6 {
                                    continue;
                                }
                                let j = (ci * 11 + iy - 1) * 6 + ix - 1;
                                let d = p[j] * w[[co, ci, ky, kx]] * q[k];
                                expected[j] += u64::from(d.abs() > 2.5) * r[k].0;
                            }
                        }
                    }
                }
            }
        }
        let terms = [ConvTerm {
            p: &p,
            map: WeightMap::Identity,
            q: &q,
        }];
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            // Whole-sample tasks, bands of several rows, bands of one row.
            for budget in [(usize::MAX, usize::MAX), (2500, 0), (0, 0)] {
                let got = pool
                    .install(|| relevance_in_bands(&g, &w.view(), &terms, &theta, &r, 1, budget));
                let got: Vec<u64> = got.iter().map(|c| c.0).collect();
                assert_eq!(got, expected, "{threads} threads, {budget:?} bytes");
            }
        }
    }
}
