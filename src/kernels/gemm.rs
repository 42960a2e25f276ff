//! A bounds-checked wrapper around the f32 matrix product of the `gemm` crate family (`gemm-f32`).
//!
//! `gemm-f32` dispatches on CPU features at run time (AVX-512, AVX2+FMA, SSE) and parallelises with
//! rayon, so a plain `cargo build --release` gets the fast path.

use crate::error::{Error, Result};

/// A strided matrix view into a slice: element `(i, j)` is `data[offset + i·rs + j·cs]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

fn last_index(offset: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(offset);
    }
    offset
        .checked_add((rows - 1).checked_mul(rs)?)?
        .checked_add((cols - 1).checked_mul(cs)?)
}

/// `C ← A·B` (or `C ← C + A·B` with `accumulate`), C being `a.rows × b.cols` at `c[c_off + i·ldc + j]`.
///
/// # Errors
/// [`Error::InvalidArgument`] if the shapes disagree or a view reaches outside its slice (an
/// internal invariant; never a panic).
pub(crate) fn gemm(
    c: &mut [f32],
    c_off: usize,
    ldc: usize,
    accumulate: bool,
    a: Mat<'_>,
    b: Mat<'_>,
) -> Result<()> {
    gemm_with_threads(
        c,
        c_off,
        ldc,
        accumulate,
        a,
        b,
        rayon::current_num_threads(),
    )
}

/// [`gemm()`] on at most `threads` threads (1: on the calling thread only).
pub(crate) fn gemm_with_threads(
    c: &mut [f32],
    c_off: usize,
    ldc: usize,
    accumulate: bool,
    a: Mat<'_>,
    b: Mat<'_>,
    threads: usize,
) -> Result<()> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k {
        return Err(Error::invalid(format!(
            "gemm: inner dimensions {k} and {} differ",
            b.rows
        )));
    }
    let fits = |len: usize, last: Option<usize>| last.is_some_and(|l| l < len || m * n * k == 0);
    if !fits(
        a.data.len(),
        last_index(a.offset, a.rows, a.cols, a.rs, a.cs),
    ) || !fits(
        b.data.len(),
        last_index(b.offset, b.rows, b.cols, b.rs, b.cs),
    ) || !fits(c.len(), last_index(c_off, m, n, ldc, 1))
    {
        return Err(Error::invalid(
            "gemm: a matrix view reaches outside its buffer",
        ));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[c_off + i * ldc..c_off + i * ldc + n].fill(0.0);
            }
        }
        return Ok(());
    }
    let par = if threads > 1 {
        gemm_common::Parallelism::Rayon(threads)
    } else {
        gemm_common::Parallelism::None
    };
    // The micro-kernels prefer a column-major destination: a row-major C = A·B is computed as the
    // column-major Cᵀ = Bᵀ·Aᵀ (the same swap the umbrella `gemm::gemm` makes; all strides here are
    // non-negative, so none of its sign flips apply).
    let (m, n, dst_cs, dst_rs) = (n, m, ldc as isize, 1isize);
    let (lhs, lhs_cs, lhs_rs) = (&b, b.rs as isize, b.cs as isize);
    let (rhs, rhs_cs, rhs_rs) = (&a, a.rs as isize, a.cs as isize);
    // SAFETY: every element the product reads or writes lies inside its slice (checked above);
    // `c` is borrowed mutably, so nothing else aliases it.
    unsafe {
        gemm_f32::gemm::f32::get_gemm_fn()(
            m,
            n,
            k,
            c.as_mut_ptr().add(c_off),
            dst_cs,
            dst_rs,
            accumulate,
            lhs.data.as_ptr().add(lhs.offset),
            lhs_cs,
            lhs_rs,
            rhs.data.as_ptr().add(rhs.offset),
            rhs_cs,
            rhs_rs,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_product_and_accumulate() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2×3
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0]; // 3×2
        let mut c = [10.0f32; 4];
        let am = Mat {
            data: &a,
            offset: 0,
            rows: 2,
            cols: 3,
            rs: 3,
            cs: 1,
        };
        let bm = Mat {
            data: &b,
            offset: 0,
            rows: 3,
            cols: 2,
            rs: 2,
            cs: 1,
        };
        gemm(&mut c, 0, 2, false, am, bm).unwrap();
        assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
        gemm(&mut c, 0, 2, true, am, bm).unwrap();
        assert_eq!(c, [8.0, 10.0, 20.0, 22.0]);
        let bad = Mat {
            data: &b,
            offset: 1,
            rows: 3,
            cols: 2,
            rs: 2,
            cs: 1,
        };
        assert!(gemm(&mut c, 0, 2, false, am, bad).is_err());
    }
}
