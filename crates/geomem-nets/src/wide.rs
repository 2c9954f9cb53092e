//! Passes compiled for the widest vector instructions of the CPU, detected at run time:
//! AVX-512 where it has them, else AVX2 + FMA, else the build's baseline. Each build runs
//! the same source, so it gives the same numbers: Rust never fuses a multiply and an add
//! on its own, and the compiler may not reassociate floating-point sums.

/// `fn NAME(ARGS) -> RET => BODY`: a function that calls `BODY(ARGS)` compiled for
/// AVX-512, else for AVX2 + FMA, else as built (`BODY` should be `#[inline(always)]`, so
/// that each copy is compiled for its instruction set). Beside it, on x86-64, a module
/// `NAME` holds the two wide copies, `NAME::avx512` and `NAME::avx2` (unsafe: the caller
/// checks the CPU, [`avx512`], [`avx2`]), so that tests can compare every copy this CPU
/// runs with the baseline, not only the widest.
macro_rules! wide_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($a:ident: $t:ty),* $(,)?) $(-> $ret:ty)? => $body:path) => {
        $(#[$m])*
        $vis fn $name($($a: $t),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                if $crate::wide::avx512() {
                    // SAFETY: avx512f was detected on this CPU.
                    return unsafe { $name::avx512($($a),*) };
                }
                if $crate::wide::avx2() {
                    // SAFETY: avx2 and fma were detected on this CPU.
                    return unsafe { $name::avx2($($a),*) };
                }
            }
            $body($($a),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[allow(dead_code)]
        $vis mod $name {
            #[allow(unused_imports)]
            use super::*;

            /// The body compiled for AVX-512.
            ///
            /// # Safety
            /// The CPU must have avx512f ([`crate::wide::avx512`]).
            #[target_feature(enable = "avx512f")]
            pub(crate) unsafe fn avx512($($a: $t),*) $(-> $ret)? {
                $body($($a),*)
            }

            /// The body compiled for AVX2 + FMA.
            ///
            /// # Safety
            /// The CPU must have avx2 and fma ([`crate::wide::avx2`]).
            #[target_feature(enable = "avx2,fma")]
            pub(crate) unsafe fn avx2($($a: $t),*) $(-> $ret)? {
                $body($($a),*)
            }
        }
    };
}

pub(crate) use wide_fn;

/// Whether this CPU runs the AVX-512 copies.
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// Whether this CPU runs the AVX2 + FMA copies.
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}
