//! The random cases' generator: SplitMix64 ([`klrp::models::SplitMix64`]), so that one seed fixes
//! a whole case, and the draws the tests make from it.

use klrp::models::SplitMix64;

/// SplitMix64 with the tests' draws.
pub struct Rng(SplitMix64);

impl Rng {
    /// The generator seeded with `seed` (the state before the first step).
    pub fn new(seed: u64) -> Self {
        Rng(SplitMix64::new(seed))
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `lo..=hi`.
    pub fn int(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in [0, 1), on a grid of 2⁻²⁴.
    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }

    /// A multiple of 1/4 in [−1, 1]: sums of products of these are exact in f32.
    pub fn quarter(&mut self) -> f32 {
        (self.int(0, 8) as f32 - 4.0) / 4.0
    }

    /// A multiple of 1/64 in [−1, 1] (exact sums keep Real comparisons tight).
    pub fn weight(&mut self) -> f32 {
        (self.below(129) as f32 - 64.0) / 64.0
    }
}

/// The numbers are SplitMix64's (Steele, Lea & Flood 2014), the generator each test module had a
/// copy of before: from seed 0 the published first outputs, and every draw is made from the next
/// 64 bits, so every seeded case is the case it was.
#[test]
fn draws_are_those_of_splitmix64() {
    let mut rng = Rng::new(0);
    let first = [
        0xe220_a839_7b1d_cdaf,
        0x6e78_9e6a_a1b9_65f4,
        0x06c4_5d18_8009_454f,
    ];
    assert_eq!([rng.next(), rng.next(), rng.next()], first);
    let bits = |seed: u64| Rng::new(seed).next();
    for seed in [1, 7, 2024] {
        let b = bits(seed);
        assert_eq!(Rng::new(seed).int(3, 9), 3 + (b % 7) as usize);
        assert_eq!(Rng::new(seed).below(129), (b % 129) as usize);
        assert_eq!(Rng::new(seed).unit(), (b >> 40) as f32 / 16_777_216.0);
        assert_eq!(Rng::new(seed).coin(), b % 2 == 1);
        assert_eq!(Rng::new(seed).quarter(), ((b % 9) as f32 - 4.0) / 4.0);
        assert_eq!(Rng::new(seed).weight(), ((b % 129) as f32 - 64.0) / 64.0);
    }
}
