//! A small deterministic random number generator for test inputs (SplitMix64), and the
//! derivation of one generator per (seed, op, case, dtype).
//!
//! The suite does not use a crate for this on purpose: inputs must be identical on every
//! platform and every version, so that a seed printed by a failing run reproduces it anywhere.

/// SplitMix64 (Steele, Lea and Flood, 2014): 64 bits of state, full period, good enough for
/// test data and trivially reproducible.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

/// The SplitMix64 output function: a bijective 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Derives a seed from the suite's seed and a path of names (op, case, dtype, purpose), so
/// every (case, dtype) gets its own stream whatever order the suite runs them in.
pub fn derive_seed(seed: u64, parts: &[&str]) -> u64 {
    // FNV-1a over the parts, each followed by a separator byte no name contains.
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for part in parts {
        for &byte in part.as_bytes().iter().chain(std::iter::once(&0xFF)) {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
    mix(seed ^ mix(h))
}

impl Rng {
    /// A generator with the given seed.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The generator for `parts` (op, case, dtype, ...) under the suite's `seed`.
    pub fn derived(seed: u64, parts: &[&str]) -> Self {
        Rng::new(derive_seed(seed, parts))
    }

    /// The generator of chunk `index` of a tensor filled in parallel from `base` (one draw of
    /// the tensor's generator): distinct, reproducible streams whatever the number of threads.
    pub fn stream(base: u64, index: u64) -> Self {
        Rng::new(mix(base ^ mix(index.wrapping_add(1))))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// Uniform in `[0, 1)`, with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in `[0, n)` without modulo bias; 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Reject the top partial copy of [0, n) so every value is equally likely.
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// A random permutation of `0..n` (Fisher-Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i as u64 + 1) as usize;
            p.swap(i, j);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproducible_and_distinct() {
        let a: Vec<u64> = {
            let mut r = Rng::derived(7, &["gemm", "odd", "f32"]);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::derived(7, &["gemm", "odd", "f32"]);
            (0..4).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        // Concatenation ambiguity is excluded by the separator.
        assert_ne!(derive_seed(7, &["ab", "c"]), derive_seed(7, &["a", "bc"]));
        assert_ne!(derive_seed(7, &["x"]), derive_seed(8, &["x"]));
        // The first output of SplitMix64 seeded with 0 (reference value).
        assert_eq!(Rng::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn ranges() {
        let mut r = Rng::new(1);
        for _ in 0..1000 {
            let u = r.uniform(-2.0, 3.0);
            assert!((-2.0..3.0).contains(&u));
            assert!(r.below(7) < 7);
        }
        assert_eq!(r.below(0), 0);
        let mut p = r.permutation(10);
        p.sort_unstable();
        assert_eq!(p, (0..10).collect::<Vec<_>>());
    }
}
