//! Pure business rules: no actix, diesel or reqwest here.

pub mod order;
