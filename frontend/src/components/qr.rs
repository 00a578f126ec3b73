//! A QR code drawn in the browser as inline SVG (no image service sees the pay URL).

use leptos::prelude::*;
use qrcode::render::svg;
use qrcode::QrCode;

use crate::i18n::use_i18n;

/// SVG markup for `content`, or `None` if it cannot be encoded (too long).
pub fn qr_svg(content: &str) -> Option<String> {
    let code = QrCode::new(content.as_bytes()).ok()?;
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(232, 232)
        .quiet_zone(true)
        .build();
    // Inline in HTML the XML prolog is noise; keep from `<svg` on.
    let start = image.find("<svg").unwrap_or(0);
    Some(image[start..].to_owned())
}

/// The QR code wrapper tests look for: `[data-testid=qr-code][data-order-no=…]`.
#[component]
pub fn QrCodeView(order_no: String, content: String) -> impl IntoView {
    let i18n = use_i18n();
    match qr_svg(&content) {
        Some(svg) => view! {
            <div
                class="qr"
                data-testid="qr-code"
                data-order-no=order_no
                role="img"
                aria-label=move || i18n.t("支付二维码", "Payment QR code")
                inner_html=svg
            ></div>
        }
        .into_any(),
        None => view! {
            <p class="alert alert-error" role="alert" data-testid="error">
                {move || i18n.t("二维码内容过长，无法显示。", "The QR code content is too long to display.")}
            </p>
        }
        .into_any(),
    }
}

#[cfg(test)]
mod tests {
    use super::qr_svg;

    #[test]
    fn renders_inline_svg() {
        let svg = qr_svg("weixin://wxpay/bizpayurl?pr=abc123").unwrap_or_default();
        assert!(svg.starts_with("<svg"));
        assert!(svg.ends_with("</svg>"));
    }
}
