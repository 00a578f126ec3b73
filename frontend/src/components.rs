//! Pieces shared by several pages.

pub mod error_box;
pub mod header;
pub mod lang_toggle;
pub mod qr;
