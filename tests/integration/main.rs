//! End-to-end tests: the real binary on real repositories.

mod harness;
mod refusals;
mod roundtrip;
mod threads;
