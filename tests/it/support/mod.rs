//! Helpers shared by the integration tests: the app (in process or as the
//! binary), a real redis-server, Node tools. Each test file that needs them
//! declares `mod support;`; not every file uses every helper.
#![allow(dead_code)]

pub mod app;
pub mod counting;
pub mod node;
pub mod pay;
pub mod redis_server;
