//! All black-box tests in one binary: CI links once instead of once per file.
//! Each module is one area; `support` and `devnet_support` are shared helpers.
//! They pay with a real buyer, so they need the `buyer` feature (a default).
#![cfg(feature = "buyer")]

mod devnet_support;
mod support;

mod blockfrost_client;
mod chain_guard;
mod cheapest_first;
mod crash;
mod demo;
mod devnet_api;
mod devnet_ledger;
mod edge;
mod foundation;
mod hardening;
mod layering;
mod liveness;
mod masumi_method;
mod networks;
mod one_payment;
mod openapi;
mod ops_metrics;
mod otel;
mod replicas;
mod script_method;
mod settle;
mod store_suite;
mod verify_http;
mod verify_pipeline;
mod x402_sdk;
