//! Passes compiled for the widest vector instructions of the CPU, detected at run time:
//! AVX-512 where it has them, else AVX2 + FMA, else the build's baseline. Each build runs
//! the same source, so it gives the same numbers: Rust never fuses a multiply and an add
//! on its own, and the compiler may not reassociate floating-point sums.

/// `fn NAME(ARGS) -> RET => BODY`: a function that calls `BODY(ARGS)` compiled for
/// AVX-512, else for AVX2 + FMA, else as built (`BODY` should be `#[inline(always)]`, so
/// that each copy is compiled for its instruction set).
macro_rules! wide_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($a:ident: $t:ty),* $(,)?) $(-> $ret:ty)? => $body:path) => {
        $(#[$m])*
        $vis fn $name($($a: $t),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    #[target_feature(enable = "avx512f")]
                    unsafe fn avx512($($a: $t),*) $(-> $ret)? {
                        $body($($a),*)
                    }
                    // SAFETY: avx512f was detected on this CPU.
                    return unsafe { avx512($($a),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    #[target_feature(enable = "avx2,fma")]
                    unsafe fn avx2($($a: $t),*) $(-> $ret)? {
                        $body($($a),*)
                    }
                    // SAFETY: avx2 and fma were detected on this CPU.
                    return unsafe { avx2($($a),*) };
                }
            }
            $body($($a),*)
        }
    };
}

pub(crate) use wide_fn;
