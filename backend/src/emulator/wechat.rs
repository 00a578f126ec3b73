//! Placeholder (being written).

use actix_web::web;

#[derive(Debug, Default)]
pub struct WechatState;

impl WechatState {
    pub fn reset(&self) {}
}

pub fn configure(_cfg: &mut web::ServiceConfig) {}
