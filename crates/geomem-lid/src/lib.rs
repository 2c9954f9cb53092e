//! Local intrinsic dimension (LID) of points: from data (Levina–Bickel MLE, TwoNN) and from
//! a diffusion model's score field (FLIPD, the Normal Bundle dimension), behind one
//! per-point interface, [`PointwiseLid`]; with the exact k-nearest-neighbour search they
//! share, the nearest-neighbour memorization label, Ross et al.'s OD-Mem / DD-Mem kinds
//! (seed 004) and the AUROC of a memorization score.
//!
//! Every estimator in three lines (points are the rows of a `faer::Mat<f64>`):
//!
//! ```
//! use geomem_lid::{Combine, Flipd, Mle, TwoNn};
//! # use faer::Mat;
//! # let noise = |i: usize, a: f64| ((i as f64 * a).sin() * 43758.5453).rem_euclid(1.0);
//! # let data = Mat::from_fn(400, 5, |i, j| [noise(i, 12.9898), noise(i, 78.233), 0.0, 0.0, 0.0][j]);
//! # let field = geomem_score::GaussianScore::from_variances(&[1.0, 1.0, 0.0, 0.0, 0.0]).unwrap();
//! let mle = Mle::default().pointwise(data.as_ref()).unwrap(); // k = 20, one value per point
//! let twonn = TwoNn::default().global(data.as_ref()).unwrap().dimension;
//! let flipd = Flipd::new(1e-4).unwrap().estimate(&field, data.as_ref()).unwrap();
//! # assert_eq!(mle.len(), 400);
//! # assert!((Combine::Harmonic.apply(&mle) - 2.0).abs() < 0.5, "{}", Combine::Harmonic.apply(&mle));
//! # assert!((twonn - 2.0).abs() < 0.5, "{twonn}");
//! # assert!(flipd.iter().all(|v| (v - 2.0).abs() < 0.01));
//! ```
//!
//! The same through [`PointwiseLid`], estimator by estimator on the same points:
//!
//! ```
//! use geomem_lid::{DataEstimator, DataLid, Flipd, FlipdLid, Mle, PointwiseLid, Summary};
//! # use faer::Mat;
//! # let data = Mat::from_fn(100, 3, |i, j| if j == 0 { (i as f64 * 0.61).sin() } else { 0.0 });
//! # let field = geomem_score::GaussianScore::from_variances(&[1.0, 0.0, 0.0]).unwrap();
//! let estimators: Vec<Box<dyn PointwiseLid>> = vec![
//!     Box::new(DataLid::itself(DataEstimator::Mle(Mle::default()))),
//!     Box::new(FlipdLid { field, flipd: Flipd::new(1e-4).unwrap() }),
//! ];
//! for e in &estimators {
//!     let s = Summary::of(&e.lid(data.as_ref()).unwrap());
//!     println!("{}: median {:.2}", e.name(), s.quantiles[2]);
//! }
//! ```
//!
//! Conventions follow scikit-dimension 0.5 where it defines the estimator (the module docs
//! of [`mle`] and [`twonn`] say which), so a user who compares gets the same numbers on the
//! same points (`benches/compare/skdim_lid.py`).

pub mod error;
pub mod flipd;
pub mod knn;
pub mod memorization;
pub mod mle;
pub mod pointwise;
pub mod twonn;

pub use error::{LidError, Result};
pub use flipd::{flipd_curve, knee, Flipd, FlipdVp};
pub use knn::{knn, knn_self, Neighbours};
pub use memorization::{auroc, classify, detect, memorization, Detection, MemKind, Memorization};
pub use mle::{median, Combine, Mle};
pub use pointwise::{DataEstimator, DataLid, FlipdLid, Neighbourhood, NormalBundleLid, PointwiseLid, Summary};
pub use twonn::{TwoNn, TwoNnFit, TwoNnMethod};
