//! GitHub: webhook deliveries (and, with the App issue, the API calls digestif makes).

pub mod webhook;
