//! Renders the IRP's `SignedQRCode`, a signed JWT of about 1–1.5 KB, as a PNG QR code for printing on the invoice.
//!
//! The whole JWT string is the QR payload, in byte mode. The IRP's verifier app reads it and checks the signature.
//! Error correction is level M (15 % recovery). If the text is too long for M, it falls back to L.
//! Version 40-M holds 2331 bytes and 40-L holds 2953. The image is 1-bit grayscale, 4 px per module,
//! with the standard 4-module quiet zone.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use qrcode::{types::QrError as EncodeError, Color, EcLevel, QrCode};

/// Pixels per QR module.
pub const MODULE_PX: usize = 4;
/// Light border around the symbol, in modules (the QR spec's minimum).
pub const QUIET_ZONE_MODULES: usize = 4;

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
    Png(#[from] png::EncodingError),
}

/// Renders `text` as a QR code PNG and returns it standard-base64-encoded, e.g. for a `data:image/png;base64,` URL.
pub fn qr_png_base64(text: &str) -> Result<String, QrError> {
    Ok(STANDARD.encode(qr_png(text)?))
}

/// Renders `text` as a QR code PNG: 1-bit grayscale, [`MODULE_PX`] px per module, with a
/// [`QUIET_ZONE_MODULES`]-module quiet zone.
pub fn qr_png(text: &str) -> Result<Vec<u8>, QrError> {
    let code = QrCode::with_error_correction_level(text, EcLevel::M)
        .or_else(|_| QrCode::with_error_correction_level(text, EcLevel::L))
        .map_err(|source| QrError::Encode { len: text.len(), source })?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET_ZONE_MODULES) * MODULE_PX;

    // 1 bit per pixel (1 = light), rows packed MSB first: an eighth of the data an 8-bit
    // image has, which is what makes the PNG's deflate cheap (it dominated the worker's CPU).
    let row_bytes = side.div_ceil(8);
    let mut pixels = vec![0xFFu8; row_bytes * side];
    for (i, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let x0 = (i % modules + QUIET_ZONE_MODULES) * MODULE_PX;
        let y0 = (i / modules + QUIET_ZONE_MODULES) * MODULE_PX;
        for y in y0..y0 + MODULE_PX {
            for x in x0..x0 + MODULE_PX {
                pixels[y * row_bytes + x / 8] &= !(0x80 >> (x % 8));
            }
        }
    }

    // `side` is at most (177 + 8) * 4 = 740, so it fits in u32.
    let side_u32 = u32::try_from(side).unwrap_or(u32::MAX);
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side_u32, side_u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::One);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
        writer.finish()?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
