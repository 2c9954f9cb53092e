//! The DDPM ancestral sampler against exact noise predictors: one training point is returned
//! exactly; Gaussian data come back with their variance; settings are checked.
use faer::Mat;
use geomem_nets::{sample_ddpm, DdpmSampling, NetsError};
use geomem_score::{DdpmSchedule, EmpiricalScore, GaussianScore, VeAsVp, VpGrid};

fn schedule() -> DdpmSchedule {
    DdpmSchedule::linear(1e-4, 0.02, 1000).unwrap()
}

#[test]
fn a_single_training_point_is_returned_exactly() {
    let x0 = Mat::from_fn(1, 5, |_, j| 0.3 - 0.2 * j as f64);
    let model = VeAsVp::new(EmpiricalScore::new(x0.clone()).unwrap(), VpGrid::Discrete(schedule()));
    for steps in [1000, 50, 1] {
        let s = sample_ddpm(&model, &schedule(), 7, &DdpmSampling::new(steps, 3).clip(false)).unwrap();
        for i in 0..7 {
            for j in 0..5 {
                assert!((s[(i, j)] - x0[(0, j)]).abs() < 1e-6, "steps {steps}: {} vs {}", s[(i, j)], x0[(0, j)]);
            }
        }
    }
}

#[test]
fn gaussian_data_come_back_with_their_variance() {
    // Data N(0, 0.25 I): the exact predictor's samples have variance 0.25 per coordinate
    // (4000 × 4 draws: the standard error of the variance is about 1 %).
    let field = GaussianScore::from_variances(&[0.25; 4]).unwrap();
    let model = VeAsVp::new(field, VpGrid::Discrete(schedule()));
    let s = sample_ddpm(&model, &schedule(), 4000, &DdpmSampling::new(1000, 11).clip(false)).unwrap();
    let var = (0..4).map(|j| (0..4000).map(|i| s[(i, j)].powi(2)).sum::<f64>() / 4000.0).sum::<f64>() / 4.0;
    assert!((var - 0.25).abs() < 0.0125, "variance {var}");
    // The same seed gives the same samples.
    let again = sample_ddpm(&model, &schedule(), 4000, &DdpmSampling::new(1000, 11).clip(false)).unwrap();
    assert_eq!(s, again);
}

#[test]
fn bad_settings_are_errors() {
    let model = VeAsVp::new(GaussianScore::from_variances(&[1.0; 2]).unwrap(), VpGrid::Discrete(schedule()));
    for (n, steps) in [(0, 10), (3, 0), (3, 1001)] {
        let r = sample_ddpm(&model, &schedule(), n, &DdpmSampling::new(steps, 0));
        assert!(matches!(r, Err(NetsError::InvalidParameter { .. })), "n {n} steps {steps}");
    }
}
