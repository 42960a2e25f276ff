//! Image input (feature `images`): decoding and torchvision-style preprocessing against
//! torchvision's own output (tests/fixtures/images/), PNG output, malformed files.
#![cfg(feature = "images")]

use klrp::Error;
use klrp::io::image::{
    Normalization, Preprocess, decode_image, load_image, read_image_file, to_tensor, write_png_rgb,
};
use klrp::io::npy::read_npy_file;
use ndarray::ArrayD;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/images")
        .join(name)
}

fn npy(name: &str) -> ArrayD<f32> {
    read_npy_file(fixture(name)).unwrap().to_f32().unwrap()
}

fn max_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn resize_crop_normalize_match_torchvision() {
    let pre = Preprocess {
        resize: Some(16),
        crop: Some((12, 12)),
        normalize: Some(Normalization::imagenet()),
        grayscale: false,
    };
    let x = load_image(fixture("rgb.png"), &pre).unwrap();
    let err = max_diff(&x, &npy("rgb_pre.npy"));
    assert!(err < 1e-5, "rgb: {err}");

    let pre = Preprocess {
        resize: Some(20),
        crop: Some((15, 17)),
        normalize: None,
        grayscale: false,
    };
    let x = load_image(fixture("rgb.png"), &pre).unwrap();
    let err = max_diff(&x, &npy("rgb_nonorm.npy"));
    assert!(err < 1e-5, "rgb, odd crop offsets: {err}");

    let pre = Preprocess {
        resize: Some(13),
        crop: Some((10, 10)),
        normalize: None,
        grayscale: true,
    };
    let x = load_image(fixture("gray.png"), &pre).unwrap();
    let err = max_diff(&x, &npy("gray_pre.npy"));
    assert!(err < 1e-5, "gray: {err}");
}

#[test]
fn imagenet_defaults() {
    let p = Preprocess::imagenet();
    assert_eq!(p.resize, Some(256));
    assert_eq!(p.crop, Some((224, 224)));
    assert_eq!(Preprocess::for_input(3, 224, 224, None).resize, Some(256));
    assert_eq!(Preprocess::for_input(1, 28, 28, None).resize, Some(32));
    assert!(Preprocess::for_input(1, 28, 28, None).grayscale);
}

#[test]
fn png_variants_and_jpeg_decode() {
    let rgba = read_image_file(fixture("rgba.png")).unwrap();
    assert_eq!((rgba.width, rgba.height), (16, 12));
    assert_eq!(rgba.pixels.len(), 16 * 12 * 3);
    let gray = read_image_file(fixture("gray.png")).unwrap();
    assert_eq!((gray.width, gray.height), (20, 26));
    assert!(gray.pixels.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));

    let jpg = read_image_file(fixture("photo.jpg")).unwrap();
    assert_eq!((jpg.width, jpg.height), (32, 24));
    // PIL (libjpeg) and jpeg-decoder may differ by a few levels (IDCT, chroma upsampling)
    let pil = read_npy_file(fixture("photo_pil.npy"))
        .unwrap()
        .to_f32()
        .unwrap();
    let ours: Vec<f32> = jpg.pixels.iter().map(|&v| f32::from(v)).collect();
    let mean_err = ours
        .iter()
        .zip(pil.iter())
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / ours.len() as f32;
    let max_err = ours
        .iter()
        .zip(pil.iter())
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        mean_err < 2.0 && max_err <= 12.0,
        "mean {mean_err}, max {max_err}"
    );
    let x = to_tensor(&jpg, &Preprocess::for_input(3, 16, 16, None)).unwrap();
    assert_eq!(x.shape(), &[1, 3, 16, 16]);
}

#[test]
fn png_roundtrip() {
    let dir = std::env::temp_dir().join(format!("klrp-images-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("out.png");
    let rgb: Vec<u8> = (0..5 * 3 * 3).map(|i| (i * 7) as u8).collect();
    write_png_rgb(&path, 5, 3, &rgb).unwrap();
    let back = read_image_file(&path).unwrap();
    assert_eq!((back.width, back.height), (5, 3));
    assert_eq!(back.pixels, rgb);
    assert!(write_png_rgb(&path, 5, 4, &rgb).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn malformed_images_are_clear_errors() {
    let png = std::fs::read(fixture("rgb.png")).unwrap();
    let jpg = std::fs::read(fixture("photo.jpg")).unwrap();
    for (name, bytes) in [("PNG", &png), ("JPEG", &jpg)] {
        for len in [2, 8, 20, 40, bytes.len() / 2, bytes.len() - 10] {
            let e = decode_image(&bytes[..len]).unwrap_err();
            let msg = e.to_string();
            assert!(
                matches!(e, Error::Malformed { .. }) && msg.contains(name) || len == 2,
                "{name} cut at {len}: {msg}"
            );
        }
    }
    let e = decode_image(b"GIF89a......").unwrap_err().to_string();
    assert!(e.contains("not a PNG or JPEG"), "{e}");
    // a PNG header claiming an absurd size
    let mut huge = png.clone();
    huge[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    assert!(decode_image(&huge).is_err());
    // crop larger than the image
    let img = read_image_file(fixture("rgba.png")).unwrap();
    let pre = Preprocess {
        resize: None,
        crop: Some((20, 20)),
        normalize: None,
        grayscale: false,
    };
    assert!(to_tensor(&img, &pre).is_err());
    assert!(matches!(
        read_image_file("/nonexistent.png"),
        Err(Error::Io { .. })
    ));
}
