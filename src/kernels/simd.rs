//! Run-time CPU feature dispatch: hot loops are compiled three times (AVX-512, AVX2 + FMA, and
//! the baseline) and the best one the CPU supports runs, so a plain `cargo build --release` gets
//! vector code without `-C target-cpu=native`. (Builds with debug assertions, such as `cargo
//! test`'s, compile the baseline only; the intrinsics micro-kernels dispatch in every build.)

use std::sync::atomic::{AtomicU8, Ordering};

/// SIMD levels, best last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// The target's baseline (SSE2 on x86-64).
    Baseline = 1,
    /// AVX2 and FMA.
    Avx2 = 2,
    /// AVX-512 (F, BW, VL, DQ).
    Avx512 = 3,
}

static LEVEL: AtomicU8 = AtomicU8::new(0);

fn detect() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return SimdLevel::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return SimdLevel::Avx2;
        }
    }
    SimdLevel::Baseline
}

/// The SIMD level kernels use: the best the CPU supports, lowered by the environment variable
/// `KLRP_SIMD` (`baseline`, `avx2`) for comparisons and tests.
pub fn simd_level() -> SimdLevel {
    match LEVEL.load(Ordering::Relaxed) {
        1 => SimdLevel::Baseline,
        2 => SimdLevel::Avx2,
        3 => SimdLevel::Avx512,
        _ => {
            let mut level = detect();
            match std::env::var("KLRP_SIMD").as_deref() {
                Ok("baseline") => level = SimdLevel::Baseline,
                Ok("avx2") => level = level.min(SimdLevel::Avx2),
                _ => {}
            }
            LEVEL.store(level as u8, Ordering::Relaxed);
            level
        }
    }
}

/// Defines `$name`, which runs `$body` compiled for the best SIMD level the CPU supports.
/// `$body` must be `#[inline(always)]` so each version gets its own vector code.
///
/// Only in builds without debug assertions (release, bench): debug and test builds, whose
/// optimisation levels do not vectorise loops anyway, compile `$body` once, which cuts the
/// library's compile time by about a quarter. The hand-written micro-kernels
/// (`kernels::direct`) and [`simd_level`] are not affected.
macro_rules! multiversion {
    (
        fn $name:ident [$($gen:tt)*] ($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:ident
    ) => {
        #[allow(clippy::too_many_arguments)]
        fn $name<$($gen)*>($($arg: $ty),*) $(-> $ret)? {
            #[cfg(all(target_arch = "x86_64", not(debug_assertions)))]
            {
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
                fn v4<$($gen)*>($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx2,fma")]
                fn v3<$($gen)*>($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                match $crate::kernels::simd::simd_level() {
                    // SAFETY: the CPU supports the features each version was compiled for.
                    $crate::kernels::simd::SimdLevel::Avx512 => return unsafe { v4($($arg),*) },
                    $crate::kernels::simd::SimdLevel::Avx2 => return unsafe { v3($($arg),*) },
                    $crate::kernels::simd::SimdLevel::Baseline => {}
                }
            }
            $body($($arg),*)
        }
    };
}
