//! Renders the IRP's `SignedQRCode`, a signed JWT of about 1–1.5 KB, as a PNG QR code for printing on the invoice.
//!
//! The whole JWT string is the QR payload, in byte mode. The IRP's verifier app reads it and checks the signature.
//! Error correction is level M (15 % recovery). If the text is too long for M, it falls back to L.
//! Version 40-M holds 2331 bytes and 40-L holds 2953. The image is 1-bit grayscale, 4 px per module,
//! with the standard 4-module quiet zone.
//!
//! The mask is fixed ([`MASK`]) instead of the encoder's best-of-eight search, which cloned and
//! scored the whole symbol eight times and was most of the worker's CPU. On JWT payloads (random-looking
//! base64) every mask scores about the same; the tests check that the fixed mask decodes and that
//! its penalty score stays close to the best mask's.
//!
//! A render is a few hundred microseconds of pure CPU: [`render_png_base64`] runs it on tokio's
//! blocking pool, at most one render per core at a time, so it never stalls the async threads.

use std::sync::OnceLock;

use base64::{engine::general_purpose::STANDARD, Engine as _};
use qrcode::canvas::{Canvas, MaskPattern};
use qrcode::{types::QrError as EncodeError, Color, EcLevel};
use tokio::sync::Semaphore;

/// Pixels per QR module.
pub const MODULE_PX: usize = 4;
/// Light border around the symbol, in modules (the QR spec's minimum).
pub const QUIET_ZONE_MODULES: usize = 4;
// A module's pixels never straddle two bytes of a 1-bit row (`png_of` draws a module with one AND).
const _: () = assert!(8 % MODULE_PX == 0 && MODULE_PX <= 8);

/// The one mask pattern every code uses (ISO 18004 pattern 100, `(y / 2 + x / 3) % 2 == 0`): the one
/// the best-mask search picked for 31 of 40 simulator-signed QR JWTs (see the tests).
pub const MASK: MaskPattern = MaskPattern::LargeCheckerboard;

/// Why a QR PNG could not be made.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    /// The text does not fit in any QR code, or cannot be encoded.
    #[error(
        "cannot encode {len} bytes as a QR code ({source}); the largest QR code (version 40, level L) \
         holds 2953 bytes, so this is not a normal SignedQRCode"
    )]
    Encode {
        /// Length of the text in bytes.
        len: usize,
        /// The encoder's complaint.
        #[source]
        source: EncodeError,
    },
    /// The PNG writer failed, which should not happen when writing to memory.
    #[error("PNG encoding of the QR code failed: {0}")]
    Png(String),
    /// The blocking render task panicked or was cancelled (runtime shutting down).
    #[error("the QR render task did not finish: {0}")]
    Task(String),
}

/// The modules of `text`'s QR code with the fixed [`MASK`], row by row, and the side in modules.
pub fn encode(text: &str) -> Result<(usize, Vec<Color>), QrError> {
    encode_with_mask(text, MASK)
}

/// [`encode`] with any mask (the tests compare masks).
pub fn encode_with_mask(text: &str, mask: MaskPattern) -> Result<(usize, Vec<Color>), QrError> {
    let err = |source| QrError::Encode { len: text.len(), source };
    let (level, bits) = match qrcode::bits::encode_auto(text.as_bytes(), EcLevel::M) {
        Ok(bits) => (EcLevel::M, bits),
        Err(_) => (EcLevel::L, qrcode::bits::encode_auto(text.as_bytes(), EcLevel::L).map_err(err)?),
    };
    // What `QrCode::with_bits` does, with `apply_mask` in place of `apply_best_mask`.
    let version = bits.version();
    let (data, ec) = qrcode::ec::construct_codewords(&bits.into_bytes(), version, level).map_err(err)?;
    let mut canvas = Canvas::new(version, level);
    canvas.draw_all_functional_patterns();
    canvas.draw_data(&data, &ec);
    canvas.apply_mask(mask);
    // A version's width is 21..=177 modules.
    Ok((usize::try_from(version.width()).unwrap_or(0), canvas.into_colors()))
}

/// Renders `text` as a QR code PNG and returns it standard-base64-encoded, e.g. for a `data:image/png;base64,` URL.
pub fn qr_png_base64(text: &str) -> Result<String, QrError> {
    Ok(STANDARD.encode(qr_png(text)?))
}

/// [`qr_png_base64`] on tokio's blocking pool, at most one render per core at a time (so a burst
/// of fresh IRNs queues here instead of starting hundreds of blocking threads).
pub async fn render_png_base64(text: String) -> Result<String, QrError> {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    let permits =
        PERMITS.get_or_init(|| Semaphore::new(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)));
    let _permit = permits.acquire().await.map_err(|e| QrError::Task(e.to_string()))?;
    tokio::task::spawn_blocking(move || qr_png_base64(&text)).await.map_err(|e| QrError::Task(e.to_string()))?
}

/// Renders `text` as a QR code PNG: 1-bit grayscale, [`MODULE_PX`] px per module, with a
/// [`QUIET_ZONE_MODULES`]-module quiet zone.
pub fn qr_png(text: &str) -> Result<Vec<u8>, QrError> {
    let (modules, colors) = encode(text)?;
    png_of(modules, &colors)
}

fn png_of(modules: usize, colors: &[Color]) -> Result<Vec<u8>, QrError> {
    let side = (modules + 2 * QUIET_ZONE_MODULES) * MODULE_PX;

    // 1 bit per pixel (1 = light), rows packed MSB first: an eighth of the data an 8-bit image
    // has. Each module row is drawn once as a pixel row, then written MODULE_PX times with PNG
    // filter 2 ("Up": each byte minus the one above it), so its repeats are zeros that deflate
    // all but erases. A module is whole bits of one byte (see the assertion above), so drawing
    // it is one AND.
    let row_bytes = side.div_ceil(8);
    let module_bits: u8 = (0xFFu16 << (8 - MODULE_PX)) as u8; // MODULE_PX high bits
    let mut row = vec![0xFFu8; row_bytes];
    let mut above = vec![0u8; row_bytes]; // the row above the first is all zeros (PNG spec)
    let mut filtered = Vec::with_capacity((row_bytes + 1) * side);
    for my in 0..modules + 2 * QUIET_ZONE_MODULES {
        row.fill(0xFF);
        if let Some(module_row) = my.checked_sub(QUIET_ZONE_MODULES).filter(|y| *y < modules) {
            for (mx, color) in colors[module_row * modules..(module_row + 1) * modules].iter().enumerate() {
                if *color == Color::Dark {
                    let x0 = (mx + QUIET_ZONE_MODULES) * MODULE_PX;
                    row[x0 / 8] &= !(module_bits >> (x0 % 8));
                }
            }
        }
        filtered.push(2u8);
        filtered.extend(row.iter().zip(&above).map(|(b, a)| b.wrapping_sub(*a)));
        for _ in 1..MODULE_PX {
            filtered.push(2u8);
            filtered.resize(filtered.len() + row_bytes, 0);
        }
        std::mem::swap(&mut row, &mut above);
    }
    let idat = deflate(&filtered)?;

    // `side` is at most (177 + 8) * 4 = 740, so it fits in u32.
    let side_u32 = u32::try_from(side).unwrap_or(u32::MAX).to_be_bytes();
    let mut ihdr = [0u8; 13];
    ihdr[..4].copy_from_slice(&side_u32);
    ihdr[4..8].copy_from_slice(&side_u32);
    // Bit depth 1, colour type 0 (grayscale), deflate, adaptive filtering, no interlace.
    ihdr[8..].copy_from_slice(&[1, 0, 0, 0, 0]);
    let mut out = Vec::with_capacity(idat.len() + 64);
    out.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    for (kind, data) in [(b"IHDR", &ihdr[..]), (b"IDAT", &idat[..]), (b"IEND", &[][..])] {
        let len = u32::try_from(data.len()).map_err(|_| QrError::Png("image data over 4 GiB".into()))?;
        out.extend_from_slice(&len.to_be_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
    }
    Ok(out)
}

/// zlib-compress `data` (level 1) with this thread's reused compressor. The `png` crate builds a
/// fresh deflate state for every image, and allocating and clearing it cost more than compressing
/// a QR code (about 0.7 of 1.8 ms per image; see README, Benchmark).
fn deflate(data: &[u8]) -> Result<Vec<u8>, QrError> {
    use flate2::{Compress, Compression, FlushCompress, Status};
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<Compress> = std::cell::RefCell::new(Compress::new(Compression::fast(), true));
    }
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        c.reset();
        // Image data this regular compresses to well under half; grow only in the rare other case.
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        loop {
            let consumed = usize::try_from(c.total_in()).unwrap_or(usize::MAX);
            let input = data.get(consumed..).unwrap_or_default();
            match c.compress_vec(input, &mut out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => return Ok(out),
                Ok(_) => out.reserve(out.capacity().max(1024)),
                Err(e) => return Err(QrError::Png(e.to_string())),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use qrcode::QrCode;

    const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

    /// A JWT-shaped string of exactly 1200 bytes.
    fn jwt_like(len: usize) -> String {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut s: String = (0..len).map(|i| alphabet[(i * 7 + i / 13) % alphabet.len()] as char).collect();
        s.replace_range(36..37, ".");
        s.replace_range(900..901, ".");
        s
    }

    #[test]
    fn renders_a_1200_byte_jwt_as_png() {
        let text = jwt_like(1200);
        let b64 = qr_png_base64(&text).unwrap();
        let png_bytes = STANDARD.decode(b64).unwrap();

        assert_eq!(&png_bytes[..8], &PNG_SIGNATURE);
        // IHDR is the first chunk: length 13, type, width, height, bit depth, colour type.
        assert_eq!(&png_bytes[8..16], &[0, 0, 0, 13, b'I', b'H', b'D', b'R']);
        let width = u32::from_be_bytes(png_bytes[16..20].try_into().unwrap()) as usize;
        let height = u32::from_be_bytes(png_bytes[20..24].try_into().unwrap()) as usize;
        assert_eq!(width, height);
        assert_eq!(png_bytes[24], 1, "bit depth");
        assert_eq!(png_bytes[25], 0, "colour type: grayscale");

        let code = QrCode::with_error_correction_level(&text, EcLevel::M).unwrap();
        assert_eq!(width, (code.width() + 2 * QUIET_ZONE_MODULES) * MODULE_PX);
        assert!((400..=800).contains(&width), "{width}");

        // Decode the PNG back and check the pixels: a white quiet zone, then the dark top-left finder pattern.
        let mut decoder = png::Decoder::new(std::io::Cursor::new(&png_bytes));
        // Expand the 1-bit samples to one byte per pixel (0 or 255).
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.width as usize, width);
        let at = |x: usize, y: usize| buf[y * width + x];
        let edge = QUIET_ZONE_MODULES * MODULE_PX;
        assert!((0..edge).all(|i| at(i, i) == 255 && at(width - 1 - i, i) == 255));
        assert_eq!(at(edge, edge), 0);
        assert_eq!(at(edge + MODULE_PX, edge + MODULE_PX), 255, "finder ring gap");
        assert_eq!(at(edge + 3 * MODULE_PX, edge + 3 * MODULE_PX), 0, "finder centre");
    }

    /// Signed QR JWTs as the simulator issues them (RS256, the IRP's claim set), `n` of them.
    fn signed_qr_jwts(n: usize) -> Vec<String> {
        let key = crate::sim::core::SimCore::new().signing_key;
        (0..n)
            .map(|i| {
                let data = serde_json::json!({
                    "SellerGstin": "29AAGCP4821K1Z3", "BuyerGstin": "33AAFCR6612L1ZA",
                    "DocNo": format!("B{i:05}/{}", i * 7919 % 1000), "DocTyp": "INV", "DocDt": "21/11/2026",
                    "TotInvVal": 1000.0 + i as f64 * 13.25, "ItemCnt": 1 + i % 9, "MainHsnCode": "998431",
                    "Irn": format!("{:064x}", (i as u128 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)),
                    "IrnDt": "2026-11-21 10:15:00",
                });
                crate::irp::jwt::sign(&data, &key, "SIM-SIGNING-KEY")
            })
            .collect()
    }

    /// Reads the PNG the way a scanner would (pixels, finder patterns, error correction).
    fn scan(png_bytes: &[u8]) -> Option<String> {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().ok()?;
        let mut buf = vec![0; reader.output_buffer_size()?];
        let info = reader.next_frame(&mut buf).ok()?;
        let (w, h) = (info.width as usize, info.height as usize);
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
        let grids = img.detect_grids();
        let (_, content) = grids.first()?.decode().ok()?;
        Some(content)
    }

    /// ISO/IEC 18004 §7.8.3 mask penalty (N1 runs, N2 blocks, N3 finder-like, N4 balance): lower
    /// is easier to scan. Outside the symbol counts as light.
    fn penalty(width: usize, colors: &[Color]) -> u32 {
        let dark = |x: isize, y: isize| {
            x >= 0
                && y >= 0
                && (x as usize) < width
                && (y as usize) < width
                && colors[y as usize * width + x as usize] == Color::Dark
        };
        let w = width as isize;
        let mut score = 0u32;
        for transpose in [false, true] {
            let at = |i: isize, j: isize| if transpose { dark(j, i) } else { dark(i, j) };
            for j in 0..w {
                let mut run = 1;
                for i in 1..=w {
                    if i < w && at(i, j) == at(i - 1, j) {
                        run += 1;
                    } else {
                        if run >= 5 {
                            score += 3 + (run - 5);
                        }
                        run = 1;
                    }
                }
                // 1:1:3:1:1 dark-light-dark-dark-dark-light-dark with 4 light modules on one side.
                for i in -4..w {
                    let core = [true, false, true, true, true, false, true];
                    if core.iter().enumerate().all(|(k, d)| at(i + k as isize, j) == *d) {
                        let light_before = (1..=4).all(|k| !at(i - k, j));
                        let light_after = (7..11).all(|k| !at(i + k, j));
                        if light_before || light_after {
                            score += 40;
                        }
                    }
                }
            }
        }
        for y in 0..w - 1 {
            for x in 0..w - 1 {
                let c = dark(x, y);
                if dark(x + 1, y) == c && dark(x, y + 1) == c && dark(x + 1, y + 1) == c {
                    score += 3;
                }
            }
        }
        let dark_count = colors.iter().filter(|c| **c == Color::Dark).count();
        let percent = (dark_count * 100 / colors.len()) as i64;
        score + 10 * ((percent - 50).unsigned_abs() / 5) as u32
    }

    const ALL_MASKS: [MaskPattern; 8] = [
        MaskPattern::Checkerboard,
        MaskPattern::HorizontalLines,
        MaskPattern::VerticalLines,
        MaskPattern::DiagonalLines,
        MaskPattern::LargeCheckerboard,
        MaskPattern::Fields,
        MaskPattern::Diamonds,
        MaskPattern::Meadow,
    ];

    #[test]
    fn fixed_mask_codes_scan_back_to_the_signed_qr() {
        let mut texts = signed_qr_jwts(12);
        texts.push(jwt_like(1200));
        texts.push(jwt_like(2600)); // level L
        for text in &texts {
            assert_eq!(scan(&qr_png(text).unwrap()).as_deref(), Some(text.as_str()), "{} bytes", text.len());
        }
    }

    #[test]
    fn fixed_mask_is_the_encoders_usual_pick_and_scores_close_to_the_best() {
        let texts = signed_qr_jwts(40);
        let mut picked = [0usize; 8];
        let (mut fixed_total, mut best_total) = (0u64, 0u64);
        for text in &texts {
            let reference = QrCode::with_error_correction_level(text, EcLevel::M).unwrap().to_colors();
            let scores: Vec<(u32, bool)> = ALL_MASKS
                .iter()
                .map(|m| {
                    let (width, colors) = encode_with_mask(text, *m).unwrap();
                    (penalty(width, &colors), colors == reference)
                })
                .collect();
            // Our encoding is the crate's but for the mask: one of the eight is exactly its output.
            let pick = scores.iter().position(|(_, same)| *same).expect("the crate's code is one of the eight masks");
            picked[pick] += 1;
            fixed_total += u64::from(scores[MASK as usize].0);
            best_total += u64::from(scores.iter().map(|(s, _)| *s).min().unwrap());
        }
        let most = (0..8).max_by_key(|i| picked[*i]).unwrap();
        eprintln!("best-mask picks per pattern: {picked:?}; penalty fixed {fixed_total} vs best {best_total}");
        assert_eq!(most, MASK as usize, "the encoder's picks per mask pattern: {picked:?}");
        // Scan robustness: the fixed mask's penalty is within 5 % of the per-code best on average.
        assert!(fixed_total * 100 <= best_total * 105, "fixed {fixed_total} vs best {best_total}");
    }

    #[test]
    fn oversized_text_is_an_error() {
        let err = qr_png_base64(&"x".repeat(4000)).unwrap_err();
        assert!(matches!(err, QrError::Encode { len: 4000, .. }), "{err:?}");
    }

    #[test]
    fn falls_back_to_level_l_when_m_is_full() {
        // More than 40-M's 2331 bytes, less than 40-L's 2953.
        let text = jwt_like(2600);
        assert!(QrCode::with_error_correction_level(&text, EcLevel::M).is_err());
        let level_l = QrCode::with_error_correction_level(&text, EcLevel::L).unwrap();
        let png_bytes = qr_png(&text).unwrap();
        let width = u32::from_be_bytes(png_bytes[16..20].try_into().unwrap()) as usize;
        assert_eq!(width, (level_l.width() + 2 * QUIET_ZONE_MODULES) * MODULE_PX);
    }
}
