//! `pow`, `exp2` and `log` for the whole executable, from the `libm` crate
//! (musl's algorithms in Rust), so that the loader need not map glibc's
//! libm.so.6 at every start for the only three functions the build takes
//! from it.
//!
//! Why: loading libm.so.6 costs each start about 27,000 instructions and 12
//! page faults (its segments, its relocations, 21 ifunc resolvers) — a tenth
//! of what `oathtool` spends in all (BENCHMARKS.md, "the loader and the
//! runtime"). The linker takes these definitions before any library's, and
//! with no reference left it does not record libm.so.6 as needed.
//!
//! What it changes: the callers (found with objdump) are estimates and
//! scales — indicatif's rate and ETA, tokio's moving average of task poll
//! times (which tunes how often a worker checks the shared queue), SQLite's
//! bm25 rank in full-text search, and the console's latency histogram bounds
//! (1 ms × 2^i, exact in any correct `exp2`) — nothing that decides a code, a
//! key or a policy. musl's functions are within one unit in the last place
//! like glibc's, so such results can differ from glibc's in the last bit at
//! most. A
//! dependency that calls another libm function brings libm.so.6 back;
//! packaging/test-deb.sh says so.

/// `f64::powf` everywhere in the executable.
#[unsafe(no_mangle)]
extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

/// `f64::exp2` (and `powf` of 2.0, which LLVM turns into it).
#[unsafe(no_mangle)]
extern "C" fn exp2(x: f64) -> f64 {
    libm::exp2(x)
}

/// `f64::ln` everywhere in the executable.
#[unsafe(no_mangle)]
extern "C" fn log(x: f64) -> f64 {
    libm::log(x)
}

#[cfg(test)]
mod tests {
    #[test]
    fn pow_exp2_and_log_give_the_exact_values() {
        // Exactly representable answers, which any correct pow/log gives.
        assert_eq!(super::pow(2.0, 10.0), 1024.0);
        assert_eq!(super::pow(0.1, 0.0), 1.0);
        assert_eq!(super::pow(4.0, 0.5), 2.0);
        for i in 0..15 {
            assert_eq!(
                0.001 * super::exp2(f64::from(i)),
                0.001 * f64::from(1u32 << i)
            );
        }
        assert_eq!(super::log(1.0), 0.0);
        assert!(super::log(0.0).is_infinite() && super::log(0.0) < 0.0);
        assert!(super::log(-1.0).is_nan());
        // And within an ulp of std's (which calls these very symbols here).
        let e = std::f64::consts::E;
        assert!((super::log(e) - 1.0).abs() <= f64::EPSILON);
        assert!((super::pow(0.1, 1.5) - 0.031_622_776_601_683_79).abs() < 1e-17);
    }
}
