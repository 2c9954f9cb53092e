//! The figures of seed 001 that need no trained network, and seed 004's von Mises figure.
pub mod common;
pub mod detection_digits;
pub mod fig3;
pub mod fig8;
pub mod green_gap;
pub mod green_nets;
pub mod green_theory;
pub mod image_dimension;
pub mod neff;
pub mod spectra_n;
pub mod spectra_t;
pub mod von_mises;
