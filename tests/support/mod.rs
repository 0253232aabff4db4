//! Shared test harness: the app (in process or as the binary), Node tools.
pub mod app;
pub mod node;
