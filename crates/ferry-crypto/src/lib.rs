pub mod arith;
pub use rug;
