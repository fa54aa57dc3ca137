//! Report tests: hand-written cases for every contract rule, and randomized comparisons
//! against a naive reimplementation.

mod contract;
mod extra;
mod naive;
mod support;
