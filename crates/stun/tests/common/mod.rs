//! Shared test data.
pub mod vectors;
