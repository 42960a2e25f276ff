//! The checks each fuzz target runs on one input: parse it, and if it parses, use the result the
//! way a user would (convert, round-trip, run the network). Anything but a panic (or, under the
//! sanitizer, a memory error) is a pass: every bad input must be answered with a `klrp::Error`.

include!("checks.rs");

/// Makes the coverage of a run depend on the input alone: rayon's global pool is the fuzzing
/// thread itself, with no other threads.
///
/// The `onnx` target runs the networks it parses, and klrp parallelises them with rayon. With
/// several threads, which of rayon's and crossbeam's scheduling paths (work stealing, sleeping,
/// waking, back-off) an execution takes depends on timing, so libFuzzer kept "finding" new edges
/// there: in a 317 k-execution probe with `-print_pcs=1`, 21 of the 28 new PCs were in
/// `rayon_core::sleep`, `rayon_core::latch`, `crossbeam_deque` and `crossbeam_utils::Backoff`,
/// which hid whether klrp's own coverage had reached a plateau. klrp's code is the same for any
/// number of threads (the kernels split work by rows; `tests/it/determinism.rs` checks the results).
///
/// A pool of one *separate* worker thread was not enough: the fuzzing thread then hands every
/// parallel call to that worker through rayon's injector and waits, and whether the worker was
/// spinning or asleep at that moment still varied (session 6 found rayon's sleep and
/// crossbeam's `Injector::steal` edges covered differently by the same inputs). With
/// `use_current_thread` the fuzzing thread is the pool's only worker, and every parallel call
/// runs inline on it. Call it from the thread that runs the inputs.
pub fn single_threaded() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only if the pool already exists, which then keeps its threads.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .use_current_thread()
            .build_global();
    });
}

/// The `onnx` check for the libFuzzer target: [`onnx`] with rayon on one thread
/// ([`single_threaded`]).
pub fn onnx_single_threaded(data: &[u8]) {
    single_threaded();
    onnx(data);
}

/// Images declaring more pixels than this (but no more than `image::MAX_PIXELS`, which klrp
/// refuses from the header) are not decoded by the `image` libFuzzer target: decoding one
/// megapixel takes about half a second under the sanitizer and coverage instrumentation, and
/// such inputs took over the corpus (78 executions/s). The decoding code is the same for every
/// size; `tests/it/fuzz_regressions.rs` still decodes every regression input whatever its size.
pub const FUZZ_MAX_DECODED_PIXELS: u64 = 1 << 18;

/// The pixel count a PNG or JPEG declares in its header (read with the decoders klrp uses), or
/// `None` if the header cannot be read (klrp then reports the error itself, cheaply).
pub fn declared_pixels(data: &[u8]) -> Option<u64> {
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        let reader = png::Decoder::new(std::io::Cursor::new(data))
            .read_info()
            .ok()?;
        let info = reader.info();
        Some(u64::from(info.width) * u64::from(info.height))
    } else {
        let mut dec = jpeg_decoder::Decoder::new(data);
        dec.read_info().ok()?;
        let info = dec.info()?;
        Some(u64::from(info.width) * u64::from(info.height))
    }
}

/// The `image` check for the libFuzzer target: skips images declaring between
/// [`FUZZ_MAX_DECODED_PIXELS`] and `image::MAX_PIXELS` pixels (see there).
pub fn image_bounded(data: &[u8]) {
    if let Some(p) = declared_pixels(data)
        && p > FUZZ_MAX_DECODED_PIXELS
        && p <= klrp::io::image::MAX_PIXELS
    {
        return;
    }
    image(data);
}

/// A libFuzzer-free driver: runs every seed in `fuzz/corpus/<target>/`, then mutates them
/// (bit flips, byte sets, interesting values, splices, truncation, duplication of chunks) for the
/// given number of seconds (first argument, default 60). A panicking input is written to
/// `fuzz/artifacts/<target>/crash-<n>` and the driver exits non-zero. It measures no coverage;
/// use cargo-fuzz for that.
pub mod plain {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
        let mut d = seed.to_vec();
        for _ in 0..=rng.below(4) {
            let n = d.len();
            match rng.below(8) {
                0 if n > 0 => {
                    let i = rng.below(n);
                    d[i] ^= 1 << rng.below(8);
                }
                1 if n > 0 => {
                    let i = rng.below(n);
                    d[i] = rng.next() as u8;
                }
                2 if n > 0 => {
                    let vals = [0u8, 1, 0x7f, 0x80, 0xff, b'0', b'9', b'-'];
                    let i = rng.below(n);
                    d[i] = vals[rng.below(vals.len())];
                }
                3 if n >= 4 => {
                    let i = rng.below(n - 3);
                    let v: [u32; 5] = [0, 1, 0x7fff_ffff, 0xffff_ffff, 1 << 16];
                    d[i..i + 4].copy_from_slice(&v[rng.below(5)].to_le_bytes());
                }
                4 if n > 0 => d.truncate(rng.below(n)),
                5 if n > 0 => {
                    let (a, b) = (rng.below(n), rng.below(n));
                    let (a, b) = (a.min(b), a.max(b));
                    let chunk = d[a..b].to_vec();
                    let at = rng.below(n);
                    d.splice(at..at, chunk);
                }
                6 if !other.is_empty() => {
                    let at = rng.below(n + 1);
                    let from = rng.below(other.len());
                    d.truncate(at);
                    d.extend_from_slice(&other[from..]);
                }
                _ if n > 0 => {
                    let (a, b) = (rng.below(n), rng.below(n));
                    d.drain(a.min(b)..a.max(b));
                }
                _ => d.push(rng.next() as u8),
            }
        }
        d
    }

    /// Runs `check` on the corpus of `target`, then on mutations until the time is up.
    pub fn main(target: &str, check: fn(&[u8])) {
        let secs: u64 = std::env::args()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(60);
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join("corpus").join(target);
        let mut corpus: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| std::fs::read(e.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        if corpus.is_empty() {
            corpus.push(Vec::new());
        }
        std::panic::set_hook(Box::new(|_| {}));
        let artifacts = root.join("artifacts").join(target);
        let mut rng = Rng(0x5EED ^ secs);
        let start = Instant::now();
        let (mut execs, mut crashes) = (0u64, 0u64);
        let run = |data: &[u8], crashes: &mut u64| {
            if catch_unwind(AssertUnwindSafe(|| check(data))).is_err() {
                std::fs::create_dir_all(&artifacts).unwrap();
                let path = artifacts.join(format!("crash-{crashes}"));
                std::fs::write(&path, data).unwrap();
                eprintln!("{target}: panic on input written to {}", path.display());
                *crashes += 1;
            }
        };
        for seed in &corpus {
            run(seed, &mut crashes);
            execs += 1;
        }
        while start.elapsed() < Duration::from_secs(secs) && crashes < 10 {
            for _ in 0..64 {
                let a = rng.below(corpus.len());
                let b = rng.below(corpus.len());
                let input = mutate(&mut rng, &corpus[a], &corpus[b]);
                run(&input, &mut crashes);
                execs += 1;
            }
        }
        let t = start.elapsed().as_secs_f64();
        println!(
            "{target}: {execs} executions in {t:.0} s ({:.0}/s), {} seeds, {crashes} crashes",
            execs as f64 / t,
            corpus.len()
        );
        if crashes > 0 {
            std::process::exit(1);
        }
    }
}
