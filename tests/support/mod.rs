//! Helpers shared by the integration tests. Each test file that needs them
//! declares `mod support;`; not every file uses every helper.
#![allow(dead_code)]

pub mod redis_server;
