//! The model crate's one integration-test binary: the checker's diagnostics, condition
//! evaluation, the business calendar, graphs, the schema, and fuzzing of the loader.

mod calendar;
mod checks;
mod eval;
mod fast_eval;
mod fuzz;
mod shipped;
