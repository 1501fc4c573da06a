//! Test kit (dev-dependency only): faithful 3PA simulators for the sync engine's tests,
//! benchmarks and demos. Each simulator is a real HTTP server on 127.0.0.1 serving a seeded,
//! mutable data set, with fault injection.

pub mod fixtures;
pub mod netsuite;
mod settle;
pub mod shopify;
pub mod woocommerce;
