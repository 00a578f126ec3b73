//! Minimal, tolerant PEM handling.
//!
//! Provider material arrives with 64- or 76-character lines, CRLF line ends,
//! stray indentation, or (Alipay) as bare base64 without any armour, so this
//! does not use a strict RFC 7468 decoder.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// One armoured block: its label (e.g. `PRIVATE KEY`) and decoded DER.
pub(crate) struct PemBlock {
    pub(crate) label: String,
    pub(crate) der: Vec<u8>,
}

const BEGIN: &str = "-----BEGIN ";
const DASHES: &str = "-----";

/// Returns true when `text` contains PEM armour.
pub(crate) fn is_armoured(text: &str) -> bool {
    text.contains(BEGIN)
}

/// Decodes every PEM block in `text`, in order.
pub(crate) fn blocks(text: &str) -> Result<Vec<PemBlock>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let after_begin = &rest[start + BEGIN.len()..];
        let label_end = after_begin
            .find(DASHES)
            .ok_or_else(|| "unterminated BEGIN line".to_string())?;
        let label = &after_begin[..label_end];
        let body_and_rest = &after_begin[label_end + DASHES.len()..];
        let end_marker = format!("-----END {label}-----");
        let body_end = body_and_rest
            .find(&end_marker)
            .ok_or_else(|| format!("missing END line for {label}"))?;
        let der = decode_body(&body_and_rest[..body_end])?;
        out.push(PemBlock {
            label: label.to_string(),
            der,
        });
        rest = &body_and_rest[body_end + end_marker.len()..];
    }
    Ok(out)
}

/// Decodes base64 text, ignoring all ASCII whitespace.
pub(crate) fn decode_base64_loose(text: &str) -> Result<Vec<u8>, String> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err("empty base64".to_string());
    }
    STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| format!("bad base64: {e}"))
}

fn decode_body(body: &str) -> Result<Vec<u8>, String> {
    // RFC 1421 headers (Proc-Type, DEK-Info) only appear on encrypted keys.
    if body.contains(':') {
        return Err("encrypted or header-carrying PEM is not supported".to_string());
    }
    decode_base64_loose(body)
}

/// Encodes DER as PEM with 64-character lines and a trailing newline.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str(&format!("-----BEGIN {label}-----\n"));
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tolerance() {
        let der: Vec<u8> = (0u8..=200).collect();
        let pem = encode("TEST", &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        let crlf = format!("  \r\n{}", pem.replace('\n', "\r\n  "));
        let parsed = blocks(&crlf).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].label, "TEST");
        assert_eq!(parsed[0].der, der);
    }

    #[test]
    fn rejects_missing_end_and_headers() {
        assert!(blocks("-----BEGIN X-----\nAAAA\n").is_err());
        assert!(
            blocks("-----BEGIN X-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END X-----").is_err()
        );
        assert!(blocks("no armour here").unwrap().is_empty());
    }
}
