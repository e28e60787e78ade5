//! QR codes: encode a text (an `otpauth://` URI) for display, and find every
//! QR code in a PNG or JPEG image.
//!
//! All functions are pure: they take text or bytes and return text or bytes.
//!
//! # Secrets
//!
//! The text put in a QR code here is normally an `otpauth://` URI, which holds
//! the shared TOTP secret. [`QrError`] therefore never contains the text (or
//! anything decoded from an image), only lengths and reasons; it is safe to log.
//!
//! # Encoding
//!
//! Every code uses error-correction level M (about 15% of the code can be
//! damaged and still read), the usual trade-off between density and robustness
//! for codes shown on a screen. The encoder picks the smallest QR version
//! (size) that fits the text.
//!
//! # Decoding
//!
//! [`decode_image`] is meant for screenshots: a large image with one or more
//! codes somewhere inside, maybe scaled by a non-integer factor and
//! JPEG-compressed. See its documentation for how it copes with that.

use std::io::Cursor;

use image::{DynamicImage, GrayImage, ImageFormat, ImageReader, Limits, Luma};
use qrcode::render::{svg as qr_svg, unicode::Dense1x2};
use qrcode::{EcLevel, QrCode};

/// The most bytes any text can take and still fit in one QR code at
/// error-correction level M: version 40 (177x177 modules) in byte mode holds
/// 2331 bytes. Texts made only of digits or upper-case letters pack denser and
/// may fit even when longer, but every text up to this length fits.
pub const MAX_TEXT_BYTES: usize = 2331;

/// Side of one QR module, in pixels, in [`png`] output. 8 px keeps even the
/// largest code (177 modules + quiet zone = 185 modules, 1480 px) a reasonable
/// image while small codes stay easy for a phone camera to focus on.
pub const PNG_MODULE_PX: u32 = 8;

/// Widest or tallest image [`decode_image`] will decode, in pixels.
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// Most memory, in bytes, the image decoder may allocate in [`decode_image`].
pub const MAX_DECODE_ALLOC: u64 = 512 * 1024 * 1024;

/// Largest area, in pixels, of the enlarged copies [`decode_image`] makes to
/// find small codes (16 Mpx: a source of up to 2048x2048, or 2560x1440, can be
/// doubled; a 1920x1080 screenshot doubled is 8.3 Mpx).
pub const MAX_UPSCALED_PIXELS: u64 = 16 * 1024 * 1024;

/// What went wrong while making or reading a QR code.
///
/// Messages say what is wrong and how to fix it. They never contain the text
/// being encoded or decoded, since that is usually a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QrError {
    /// The text does not fit in a single QR code.
    #[error(
        "text of {len} bytes is too long for one QR code (max {max} bytes at error-correction \
         level M); shorten it, e.g. a shorter label or issuer"
    )]
    TooLong {
        /// Length of the text, in bytes.
        len: usize,
        /// [`MAX_TEXT_BYTES`].
        max: usize,
    },
    /// The QR encoder refused the text for another reason (should not happen
    /// for ordinary text; it is a bug worth reporting).
    #[error("cannot encode text of {len} bytes as a QR code: {reason}")]
    Encode {
        /// Length of the text, in bytes.
        len: usize,
        /// The encoder's reason.
        reason: String,
    },
    /// Writing the PNG failed (should not happen: it is written to memory).
    #[error("cannot write the QR code as PNG: {reason}")]
    PngWrite {
        /// The PNG encoder's reason.
        reason: String,
    },
    /// The bytes given to [`decode_image`] are not a PNG or JPEG image that
    /// can be decoded.
    #[error("not a PNG or JPEG image: {reason}; save the screenshot as PNG or JPEG and try again")]
    NotAnImage {
        /// Why the bytes were rejected.
        reason: String,
    },
    /// The image is larger than the decoder is allowed to handle.
    #[error(
        "image is too large to decode safely ({reason}); crop the screenshot to the part with \
         the QR code (at most {side}x{side} pixels)",
        side = MAX_IMAGE_SIDE
    )]
    ImageTooLarge {
        /// What limit was hit.
        reason: String,
    },
}

fn encode(text: &str) -> Result<QrCode, QrError> {
    QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).map_err(|e| match e {
        qrcode::types::QrError::DataTooLong => QrError::TooLong {
            len: text.len(),
            max: MAX_TEXT_BYTES,
        },
        other => QrError::Encode {
            len: text.len(),
            reason: other.to_string(),
        },
    })
}

/// Renders `text` as a QR code for a terminal, two modules per character cell.
///
/// # Why `Dense1x2`
///
/// A terminal cell is about twice as tall as it is wide. Drawing one module per
/// cell would make the code twice as tall as wide; two characters
/// per module (`██`) give square modules but one line per module row, too
/// tall for many windows. Unicode half blocks (`▀`, `▄`, `█`, space) pack two
/// modules, one above the other, into each cell, so modules are (nearly)
/// square and the code takes half the lines: a typical `otpauth://` URI
/// (version 5-8, 37-49 modules, plus 8 for the quiet zone) fits in 23-29
/// lines.
///
/// # Colours
///
/// A block character is painted in the terminal's *foreground* colour and a
/// space shows the *background*. Most terminal themes are light text on a
/// dark background, so QR **dark** modules are drawn as spaces and **light**
/// modules (including the quiet zone, 4 modules wide) as blocks. On such a
/// terminal this yields the normal dark-on-light code, framed by a light
/// quiet zone, which every scanner reads. Drawing dark modules as blocks
/// instead would show an inverted (light-on-dark) code with no light quiet
/// zone at all, which many authenticator apps cannot read.
///
/// On a light-background terminal the output shows up inverted; modern
/// camera apps (iOS Camera, Google Lens) usually still read it, but if a
/// scanner fails there, use [`svg`] or [`png`] instead. No ANSI colour codes
/// are emitted, so the text can be printed, logged or piped unchanged.
///
/// Lines are joined by `\n`, all have the same number of characters, and there
/// is no trailing newline.
///
/// # Errors
///
/// [`QrError::TooLong`] if `text` does not fit in one QR code.
pub fn render_terminal(text: &str) -> Result<String, QrError> {
    let code = encode(text)?;
    Ok(code
        .render::<Dense1x2>()
        // Swap the colours: dark modules show the terminal background.
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .module_dimensions(1, 1)
        .build())
}

/// Renders `text` as a standalone SVG document (black on white, with quiet
/// zone). The document starts with an XML declaration, uses a `viewBox` so it
/// scales to any size, and `shape-rendering="crispEdges"` so modules stay sharp.
///
/// # Errors
///
/// [`QrError::TooLong`] if `text` does not fit in one QR code.
pub fn svg(text: &str) -> Result<String, QrError> {
    let code = encode(text)?;
    Ok(code
        .render::<qr_svg::Color<'_>>()
        .dark_color(qr_svg::Color("#000000"))
        .light_color(qr_svg::Color("#ffffff"))
        .quiet_zone(true)
        .module_dimensions(PNG_MODULE_PX, PNG_MODULE_PX)
        .build())
}

/// Renders `text` as an 8-bit greyscale PNG, black on white,
/// [`PNG_MODULE_PX`] pixels per module, with a 4-module quiet zone.
///
/// # Errors
///
/// [`QrError::TooLong`] if `text` does not fit in one QR code.
pub fn png(text: &str) -> Result<Vec<u8>, QrError> {
    let code = encode(text)?;
    let img: GrayImage = code
        .render::<Luma<u8>>()
        .quiet_zone(true)
        .module_dimensions(PNG_MODULE_PX, PNG_MODULE_PX)
        .build();
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageLuma8(img)
        .write_to(&mut out, ImageFormat::Png)
        .map_err(|e| QrError::PngWrite {
            reason: e.to_string(),
        })?;
    Ok(out.into_inner())
}

/// Finds every QR code in a PNG or JPEG image and returns their texts, in the
/// order found, without duplicates.
///
/// Returns `Ok(vec![])` when the image holds no readable QR code: whether that
/// is an error is for the caller to decide.
///
/// # How
///
/// The image is decoded, flattened onto white if it has transparency (a
/// transparent background would otherwise read as black), converted to
/// greyscale and handed to [`rqrr`], which binarises it, looks for the three
/// finder patterns ("capstones") of each code and samples the grid between
/// them.
///
/// # Why several scales
///
/// rqrr (a port of quirc) is simple and sensitive to how many pixels a module
/// spans: with modules of 1.5-3 px, or edges blurred by smooth scaling and
/// JPEG, it often finds no finder pattern, or samples the grid off by a
/// fraction of a module and fails error correction. Whether it succeeds flips
/// with tiny changes of scale or position. Enlarging the image moves the
/// sampling points and gives the finder-pattern check more pixels, so when a
/// pass finds nothing, or detects a code it cannot read, the search is
/// repeated on other copies of the image, in this order:
///
/// 1. full resolution;
/// 2. double size, bilinear;
/// 3. 1.5x size, nearest neighbour;
/// 4. double size, nearest neighbour;
/// 5. full resolution with inverted brightness, for light-on-dark codes
///    (a dark-themed page, or [`render_terminal`] on a light terminal).
///
/// Enlarged copies are made only while they stay within
/// [`MAX_UPSCALED_PIXELS`] (a 1920x1080 or 2560x1440 screenshot qualifies; in
/// larger ones modules are rarely that small). This order was chosen by
/// measurement over codes of 1.5-14 px per module, scaled with nearest,
/// bilinear and bicubic filters, pasted into a 1600x900 screenshot and saved
/// as JPEG (quality 80): full resolution alone read 75% of them, these passes
/// 89%; most of the rest have modules under 2 px, blurred, which is beyond
/// rqrr. Half-size copies read none that these passes missed.
///
/// The search stops after the first pass in which at least one code was
/// detected and every detected code was read. Results of all passes run are
/// merged, keeping the first occurrence of each text. A consequence: if one
/// pass reads one code and misses another entirely (not even detecting its
/// finder patterns), later passes are not tried and the second code is not
/// returned.
///
/// Codes whose content is not valid UTF-8 are skipped (an `otpauth://` URI is
/// always UTF-8), as are codes that cannot be read; this never panics.
///
/// # Cost
///
/// An image with a clear code is read in one pass. An image with no code goes
/// through every pass: about 12 times the work of one pass, a fraction of a
/// second for a 1920x1080 screenshot in an optimised build, several seconds in
/// a debug build.
///
/// # Why limits
///
/// A small file can declare an enormous image (a "decompression bomb": a few
/// KiB of PNG that inflate to gigabytes). The decoder is therefore limited to
/// [`MAX_IMAGE_SIDE`] pixels per side and [`MAX_DECODE_ALLOC`] bytes of
/// memory, far above any real screenshot, and fails cleanly beyond that.
///
/// # Errors
///
/// - [`QrError::NotAnImage`] if the bytes are not a PNG or JPEG image, or are
///   a damaged one.
/// - [`QrError::ImageTooLarge`] if the image exceeds the limits above.
pub fn decode_image(bytes: &[u8]) -> Result<Vec<String>, QrError> {
    let luma = load_luma(bytes)?;
    let mut found = Vec::new();
    for pass in PASSES {
        let done = match pass {
            Pass::Full => scan(&luma, &mut found),
            Pass::Scaled(factor, filter) => match scaled(&luma, factor, filter) {
                Some(img) => scan(&img, &mut found),
                None => false,
            },
            Pass::Inverted => {
                let mut inverted = luma.clone();
                image::imageops::invert(&mut inverted);
                scan(&inverted, &mut found)
            }
        };
        if done {
            break;
        }
    }
    Ok(found)
}

/// One attempt of [`decode_image`] at finding codes.
#[derive(Clone, Copy, Debug)]
enum Pass {
    /// The image as it is.
    Full,
    /// The image enlarged by a factor (in tenths) with a filter.
    Scaled(u32, Filter),
    /// The image with inverted brightness.
    Inverted,
}

/// The passes of [`decode_image`], in order; see there for why.
const PASSES: [Pass; 5] = [
    Pass::Full,
    Pass::Scaled(20, Filter::Bilinear),
    Pass::Scaled(15, Filter::Nearest),
    Pass::Scaled(20, Filter::Nearest),
    Pass::Inverted,
];

/// `img` enlarged by `tenths / 10`, or `None` if the copy would exceed
/// [`MAX_UPSCALED_PIXELS`].
fn scaled(img: &GrayImage, tenths: u32, filter: Filter) -> Option<GrayImage> {
    let w = u64::from(img.width()) * u64::from(tenths) / 10;
    let h = u64::from(img.height()) * u64::from(tenths) / 10;
    if w * h > MAX_UPSCALED_PIXELS || w == 0 || h == 0 {
        return None;
    }
    // Both fit in u32: their product is at most MAX_UPSCALED_PIXELS.
    Some(resize(img, w as u32, h as u32, filter))
}

/// How [`resize`] computes a pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Filter {
    /// Copy the nearest source pixel: keeps edges hard, module widths uneven.
    Nearest,
    /// Interpolate the 4 nearest source pixels: smooth edges.
    Bilinear,
}

/// `src` resized to `w`x`h` (both non-zero). Pixel centres are aligned, as in
/// `image::imageops::resize`, but this is specialised to 8-bit grey and uses
/// lookup tables, so it is many times faster: enlarging a 1920x1080
/// screenshot must not cost more than scanning it.
fn resize(src: &GrayImage, w: u32, h: u32, filter: Filter) -> GrayImage {
    let (sw, sh) = (src.width() as usize, src.height() as usize);
    let raw = src.as_raw();
    let mut out = Vec::with_capacity(w as usize * h as usize);
    match filter {
        Filter::Nearest => {
            let xs = nearest_table(w as usize, sw);
            for sy in nearest_table(h as usize, sh) {
                let row = &raw[sy * sw..(sy + 1) * sw];
                out.extend(xs.iter().map(|&sx| row[sx]));
            }
        }
        Filter::Bilinear => {
            let xs = bilinear_table(w as usize, sw);
            for (y0, y1, wy) in bilinear_table(h as usize, sh) {
                let (r0, r1) = (&raw[y0 * sw..(y0 + 1) * sw], &raw[y1 * sw..(y1 + 1) * sw]);
                out.extend(xs.iter().map(|&(x0, x1, wx)| {
                    let lerp = |a: u8, b: u8, t: u32| u32::from(a) * (256 - t) + u32::from(b) * t;
                    let top = lerp(r0[x0], r0[x1], wx);
                    let bottom = lerp(r1[x0], r1[x1], wx);
                    // Weights are in 1/256ths on each axis: divide by 65536, rounding.
                    ((top * (256 - wy) + bottom * wy + 32_768) >> 16) as u8
                }));
            }
        }
    }
    GrayImage::from_raw(w, h, out).expect("buffer has w*h pixels")
}

/// For each of `n_out` output positions, the source index (of `n_in`) whose
/// pixel centre is nearest.
fn nearest_table(n_out: usize, n_in: usize) -> Vec<usize> {
    (0..n_out)
        .map(|i| ((2 * i + 1) * n_in / (2 * n_out)).min(n_in - 1))
        .collect()
}

/// For each of `n_out` output positions, the two source indices around its
/// centre and the weight of the second, in 1/256ths.
fn bilinear_table(n_out: usize, n_in: usize) -> Vec<(usize, usize, u32)> {
    (0..n_out)
        .map(|i| {
            let pos =
                ((i as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5).clamp(0.0, (n_in - 1) as f64);
            let i0 = pos.floor() as usize;
            let i1 = (i0 + 1).min(n_in - 1);
            let t = ((pos - i0 as f64) * 256.0).round() as u32;
            (i0, i1, t)
        })
        .collect()
}

fn load_luma(bytes: &[u8]) -> Result<GrayImage, QrError> {
    let not_image = |reason: String| QrError::NotAnImage { reason };
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| not_image(e.to_string()))?;
    match reader.format() {
        Some(ImageFormat::Png | ImageFormat::Jpeg) => {}
        Some(other) => {
            return Err(not_image(format!(
                "it is a {other:?} image, which is not supported"
            )));
        }
        None => {
            return Err(not_image(format!(
                "the {} bytes given are not in any known image format",
                bytes.len()
            )));
        }
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(l) => QrError::ImageTooLarge {
            reason: l.to_string(),
        },
        other => not_image(other.to_string()),
    })?;
    Ok(if img.color().has_alpha() {
        flatten_on_white(&img)
    } else {
        img.to_luma8()
    })
}

/// Greyscale of `img` composited over a white background.
fn flatten_on_white(img: &DynamicImage) -> GrayImage {
    let rgba = img.to_rgba8();
    let mut out = GrayImage::new(rgba.width(), rgba.height());
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let [r, g, b, a] = src.0.map(u32::from);
        // Rec. 709 luma in fixed point (weights sum to 10_000), like image's
        // own conversion; then blend with white by alpha. Fits in u8.
        let y = (2126 * r + 7152 * g + 722 * b) / 10_000;
        dst.0[0] = ((y * a + 255 * (255 - a)) / 255) as u8;
    }
    out
}

/// One rqrr pass over `img`, adding new texts to `found`. Returns true when
/// at least one code was detected and every detected code was read (so other
/// passes are not needed).
fn scan(img: &GrayImage, found: &mut Vec<String>) -> bool {
    let mut prepared = rqrr::PreparedImage::prepare(img.clone());
    let grids = prepared.detect_grids();
    let mut all_read = !grids.is_empty();
    for grid in &grids {
        let mut bytes = Vec::new();
        match grid.decode_to(&mut bytes) {
            Ok(_meta) => {
                // Not UTF-8: read fine but not something we can return; skip.
                if let Ok(text) = String::from_utf8(bytes)
                    && !found.contains(&text)
                {
                    found.push(text);
                }
            }
            Err(_) => all_read = false,
        }
    }
    all_read
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::jpeg::JpegEncoder;

    const URI: &str =
        "otpauth://totp/ACME%20Co:alice@example.com?secret=JBSWY3DPEHPK3PXP&issuer=ACME%20Co";

    /// A code with 2.5 px modules (1 px modules enlarged 2.5x, nearest) in a
    /// JPEG screenshot: rqrr alone misses it at full resolution, an enlarged
    /// pass finds it. Guards the reason the retry passes exist.
    #[test]
    fn retry_passes_find_what_full_resolution_misses() {
        let big = image::load_from_memory(&png(URI).unwrap())
            .unwrap()
            .to_luma8();
        let px = PNG_MODULE_PX;
        let small = GrayImage::from_fn(big.width() / px, big.height() / px, |x, y| {
            *big.get_pixel(x * px + px / 2, y * px + px / 2)
        });
        // 45 modules (37 + quiet zone) to 113 px. (112 px happens to read fine
        // at full resolution: rqrr's success is that erratic.)
        let side = (small.width() * 5).div_ceil(2);
        let code =
            image::imageops::resize(&small, side, side, image::imageops::FilterType::Nearest);
        let mut screen = GrayImage::from_pixel(800, 450, Luma([236]));
        let sidebar = GrayImage::from_pixel(300, 450, Luma([40]));
        image::imageops::replace(&mut screen, &sidebar, 0, 0);
        image::imageops::replace(&mut screen, &code, 413, 7);
        let mut jpeg = Vec::new();
        JpegEncoder::new_with_quality(&mut jpeg, 80)
            .encode_image(&screen)
            .unwrap();

        let decoded = image::load_from_memory(&jpeg).unwrap().to_luma8();
        let mut found = Vec::new();
        assert!(!scan(&decoded, &mut found));
        assert!(found.is_empty());
        assert_eq!(decode_image(&jpeg).unwrap(), vec![URI.to_string()]);
    }

    #[test]
    fn scaled_respects_the_area_cap() {
        let img = GrayImage::new(2048, 2049);
        assert!(scaled(&img, 20, Filter::Nearest).is_none());
        let img = GrayImage::new(20, 10);
        let up = scaled(&img, 15, Filter::Nearest).unwrap();
        assert_eq!(up.dimensions(), (30, 15));
    }

    #[test]
    fn resize_matches_expectations() {
        let src = GrayImage::from_raw(2, 1, vec![0, 200]).unwrap();
        // Nearest 2x: each pixel twice.
        assert_eq!(
            resize(&src, 4, 2, Filter::Nearest).as_raw(),
            &vec![0, 0, 200, 200, 0, 0, 200, 200]
        );
        // Bilinear 2x: output centres at source 0-0.25 (clamped), 0.25, 0.75, 1.25 (clamped).
        assert_eq!(
            resize(&src, 4, 1, Filter::Bilinear).as_raw(),
            &vec![0, 50, 150, 200]
        );
        // 1.5x nearest of 2 px: 3 px.
        assert_eq!(
            resize(&src, 3, 1, Filter::Nearest).as_raw(),
            &vec![0, 200, 200]
        );
        // Same size: unchanged.
        let img = GrayImage::from_fn(7, 5, |x, y| Luma([(x * 30 + y) as u8]));
        assert_eq!(resize(&img, 7, 5, Filter::Bilinear), img);
        assert_eq!(resize(&img, 7, 5, Filter::Nearest), img);
    }

    #[test]
    fn flatten_on_white_blends_by_alpha() {
        let img = DynamicImage::ImageRgba8(
            image::RgbaImage::from_vec(3, 1, vec![0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 128])
                .unwrap(),
        );
        let flat = flatten_on_white(&img);
        assert_eq!(flat.as_raw(), &vec![255, 0, 255]);
    }
}
