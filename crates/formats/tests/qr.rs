//! Tests of `oathdesk_formats::qr`: render, then read back what was rendered,
//! including from screenshot-like images.

use std::collections::BTreeSet;
use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use image::{GrayImage, ImageFormat, Luma};
use oathdesk_formats::qr::{self, QrError};

const URI: &str =
    "otpauth://totp/ACME%20Co:alice@example.com?secret=JBSWY3DPEHPK3PXP&issuer=ACME%20Co";

/// A 64-byte (SHA-512 sized) secret is 103 base32 characters (unpadded).
fn long_uri() -> String {
    let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
                  GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    let secret = &secret[..103];
    format!(
        "otpauth://totp/Example%20Bank%20International:very.long.user.name%2Bsuffix@example.org\
         ?secret={secret}&issuer=Example%20Bank%20International&algorithm=SHA512&digits=8&period=60"
    )
}

fn png_bytes(img: &GrayImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

fn jpeg_bytes(img: &GrayImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .unwrap();
    out
}

/// The QR code of `text` with one pixel per module (quiet zone included).
fn qr_1px(text: &str) -> GrayImage {
    let img = image::load_from_memory(&qr::png(text).unwrap())
        .unwrap()
        .to_luma8();
    let px = qr::PNG_MODULE_PX;
    assert_eq!(img.width() % px, 0);
    // Sample the centre of each module.
    GrayImage::from_fn(img.width() / px, img.height() / px, |x, y| {
        *img.get_pixel(x * px + px / 2, y * px + px / 2)
    })
}

/// A screen-like light grey canvas with a few darker "windows" on it.
fn desktop(w: u32, h: u32) -> GrayImage {
    let mut img = GrayImage::from_pixel(w, h, Luma([236]));
    for (x, y, rw, rh, v) in [
        (0, 0, w, 40, 60),
        (40, 80, w / 3, h / 2, 200),
        (w / 2, h / 2, w / 3, h / 3, 120),
    ] {
        let window = GrayImage::from_pixel(rw, rh, Luma([v]));
        imageops::replace(&mut img, &window, i64::from(x), i64::from(y));
    }
    img
}

fn scaled(img: &GrayImage, factor: f32, filter: FilterType) -> GrayImage {
    let w = (img.width() as f32 * factor).round() as u32;
    let h = (img.height() as f32 * factor).round() as u32;
    imageops::resize(img, w, h, filter)
}

#[test]
fn png_round_trips_short_uri() {
    let png = qr::png(URI).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert_eq!(qr::decode_image(&png).unwrap(), vec![URI.to_string()]);
}

#[test]
fn png_round_trips_long_sha512_uri() {
    let uri = long_uri();
    assert!(uri.contains("algorithm=SHA512&digits=8&period=60"));
    let png = qr::png(&uri).unwrap();
    assert_eq!(qr::decode_image(&png).unwrap(), vec![uri]);
}

#[test]
fn jpeg_screenshot_with_scaled_code_decodes() {
    // png()'s 8 px modules shrunk to 3.6 px with bilinear filtering, like a
    // browser showing the image smaller, then saved as JPEG.
    let code = image::load_from_memory(&qr::png(URI).unwrap())
        .unwrap()
        .to_luma8();
    let code = scaled(&code, 0.45, FilterType::Triangle);
    let mut screen = desktop(1600, 900);
    imageops::replace(&mut screen, &code, 913, 377);
    let jpeg = jpeg_bytes(&screen, 80);
    assert!(jpeg.starts_with(&[0xFF, 0xD8]));
    assert_eq!(qr::decode_image(&jpeg).unwrap(), vec![URI.to_string()]);
}

#[test]
fn jpeg_screenshot_with_small_code_decodes() {
    // 1 px modules enlarged 3x, nearest, in a JPEG: small but regular.
    let code = scaled(&qr_1px(URI), 3.0, FilterType::Nearest);
    let mut screen = desktop(1600, 900);
    imageops::replace(&mut screen, &code, 211, 613);
    let jpeg = jpeg_bytes(&screen, 80);
    assert_eq!(qr::decode_image(&jpeg).unwrap(), vec![URI.to_string()]);
}

#[test]
fn two_codes_side_by_side_both_decode() {
    let other =
        "otpauth://totp/Other:bob@example.net?secret=GEZDGNBVGY3TQOJQ&issuer=Other&digits=8";
    let mut screen = GrayImage::from_pixel(1200, 600, Luma([255]));
    imageops::replace(
        &mut screen,
        &scaled(&qr_1px(URI), 4.0, FilterType::Nearest),
        50,
        60,
    );
    imageops::replace(
        &mut screen,
        &scaled(&qr_1px(other), 4.0, FilterType::Nearest),
        650,
        80,
    );
    let found = qr::decode_image(&png_bytes(&screen)).unwrap();
    assert_eq!(
        found.len(),
        2,
        "expected exactly two codes, got {}",
        found.len()
    );
    let found: BTreeSet<_> = found.into_iter().collect();
    let expected: BTreeSet<_> = [URI.to_string(), other.to_string()].into();
    assert_eq!(found, expected);
}

#[test]
fn same_code_twice_is_reported_once() {
    let code = scaled(&qr_1px(URI), 4.0, FilterType::Nearest);
    let mut screen = GrayImage::from_pixel(900, 400, Luma([255]));
    imageops::replace(&mut screen, &code, 20, 20);
    imageops::replace(&mut screen, &code, 500, 40);
    assert_eq!(
        qr::decode_image(&png_bytes(&screen)).unwrap(),
        vec![URI.to_string()]
    );
}

#[test]
fn transparent_background_png_decodes() {
    // Dark modules opaque black, light modules fully transparent *black*:
    // a plain luma conversion would see an all-black image.
    let code = qr_1px(URI);
    let code = scaled(&code, 4.0, FilterType::Nearest);
    let rgba = image::RgbaImage::from_fn(code.width(), code.height(), |x, y| {
        let dark = code.get_pixel(x, y).0[0] < 128;
        image::Rgba([0, 0, 0, if dark { 255 } else { 0 }])
    });
    let mut out = Cursor::new(Vec::new());
    rgba.write_to(&mut out, ImageFormat::Png).unwrap();
    assert_eq!(
        qr::decode_image(out.get_ref()).unwrap(),
        vec![URI.to_string()]
    );
}

#[test]
fn image_without_code_gives_empty_list() {
    // Small: an image without a code goes through every retry pass, which is
    // slow in debug builds.
    let screen = desktop(480, 270);
    assert_eq!(
        qr::decode_image(&png_bytes(&screen)).unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        qr::decode_image(&jpeg_bytes(&screen, 80)).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn random_bytes_are_not_an_image() {
    // Small xorshift generator: deterministic "random" bytes.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let err = qr::decode_image(&bytes).unwrap_err();
    assert!(matches!(err, QrError::NotAnImage { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("not a PNG or JPEG image: "),
        "{err}"
    );

    let err = qr::decode_image(b"").unwrap_err();
    assert!(matches!(err, QrError::NotAnImage { .. }), "{err:?}");
}

#[test]
fn truncated_png_is_not_an_image() {
    let png = qr::png(URI).unwrap();
    let err = qr::decode_image(&png[..png.len() / 2]).unwrap_err();
    assert!(matches!(err, QrError::NotAnImage { .. }), "{err:?}");
}

#[test]
fn other_image_format_is_rejected() {
    // A GIF header: recognised, but not accepted.
    let err = qr::decode_image(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;").unwrap_err();
    assert!(matches!(err, QrError::NotAnImage { .. }), "{err:?}");
    assert!(err.to_string().contains("Gif"), "{err}");
}

#[test]
fn oversized_image_hits_the_limit() {
    let wide = GrayImage::from_pixel(qr::MAX_IMAGE_SIDE + 1, 1, Luma([255]));
    let err = qr::decode_image(&png_bytes(&wide)).unwrap_err();
    assert!(matches!(err, QrError::ImageTooLarge { .. }), "{err:?}");
    assert!(err.to_string().contains("crop"), "{err}");
}

#[test]
fn svg_is_a_standalone_document() {
    let svg = qr::svg(URI).unwrap();
    assert!(
        svg.starts_with("<?xml") || svg.starts_with("<svg"),
        "{}",
        &svg[..40]
    );
    assert!(svg.contains("<svg"));
    assert!(svg.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(
        !svg.contains("secret="),
        "the URI must not appear as text in the SVG"
    );
}

#[test]
fn terminal_rendering_has_even_lines_and_half_blocks() {
    let out = qr::render_terminal(URI).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    let width = lines[0].chars().count();
    assert!(lines.iter().all(|l| l.chars().count() == width));
    assert!(
        out.chars()
            .all(|c| matches!(c, ' ' | '▀' | '▄' | '█' | '\n'))
    );
    assert!(out.contains('▀') || out.contains('▄'));
    // Modules plus a 4-module quiet zone on each side, two rows per line.
    let modules = qr_1px(URI).width() as usize;
    assert_eq!(width, modules);
    assert_eq!(lines.len(), modules.div_ceil(2));
    // Light (quiet zone) is drawn as blocks, dark modules as spaces: the first
    // line is all quiet zone, and line 2 (module rows 4 and 5) starts, after 4
    // quiet columns, with the top-left finder pattern's dark edge.
    assert!(lines[0].chars().all(|c| c == '█'), "{}", lines[0]);
    assert_eq!(lines[2].chars().nth(3), Some('█'));
    assert_eq!(lines[2].chars().nth(4), Some(' '));
}

#[test]
fn too_long_text_is_an_error_without_the_text() {
    let text = format!("otpauth://totp/x?secret={}", "hunter2".repeat(500));
    let err = qr::svg(&text).unwrap_err();
    assert_eq!(
        err,
        QrError::TooLong {
            len: text.len(),
            max: qr::MAX_TEXT_BYTES
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("text of {} bytes is too long", text.len())),
        "{msg}"
    );
    assert!(
        !msg.contains("hunter2"),
        "error message leaks the text: {msg}"
    );
    assert!(qr::png(&text).is_err());
    assert!(qr::render_terminal(&text).is_err());
}

#[test]
fn max_text_bytes_always_fits() {
    // Lower-case text is stored in byte mode, the least dense: the worst case.
    let text = "z".repeat(qr::MAX_TEXT_BYTES);
    assert!(qr::render_terminal(&text).is_ok());
    let err = qr::render_terminal(&format!("{text}z")).unwrap_err();
    assert!(matches!(err, QrError::TooLong { .. }), "{err:?}");
}
