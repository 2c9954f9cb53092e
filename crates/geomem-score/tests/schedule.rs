//! Tests of the noise schedules and of the VP ↔ VE adapters.
mod common;

use common::{gaussian_rows, rel_err};
use faer::{Mat, MatMut, MatRef};
use geomem_score::{
    DdpmSchedule, GaussianScore, GeometricVe, LinearVpSde, Result, ScoreError, ScoreFieldExt, VeAsVp, VpEpsModel,
    VpGrid, VpScore, VpTime,
};

#[test]
fn ddpm_ve_time_is_monotone_and_inverts_exactly() {
    let s = DdpmSchedule::default();
    assert_eq!(s.steps(), 1000);
    let mut prev = 0.0;
    for k in 0..1000 {
        let t = s.ve_time(k).unwrap();
        assert!(t > prev);
        prev = t;
        assert_eq!(s.step_of_ve_time(t).unwrap(), k);
        // ᾱ and t agree: t = (1 - ᾱ)/ᾱ.
        let a = s.alpha_bar(k).unwrap();
        assert!(((1.0 - a) / a - t).abs() <= 1e-12 * t.max(1e-3), "k = {k}");
        assert!((s.vp_to_ve_scale(k).unwrap() - 1.0 / a.sqrt()).abs() < 1e-13 / a.sqrt());
    }
    // ᾱ_0 = 1 - 1e-4 → t_0 = 1e-4 / (1 - 1e-4), to full relative precision.
    let t0 = 1e-4 / (1.0 - 1e-4);
    assert!((s.ve_time(0).unwrap() - t0).abs() < 1e-15 * t0);
    assert!(matches!(s.ve_time(1000), Err(ScoreError::StepOutOfRange { step: 1000, steps: 1000 })));
    assert!(DdpmSchedule::linear(0.0, 0.02, 10).is_err());
    assert!(DdpmSchedule::linear(0.1, 0.02, 10).is_err());
}

#[test]
fn off_grid_and_out_of_range_times_are_errors_not_rounded() {
    let s = DdpmSchedule::default();
    let (t5, t6) = (s.ve_time(5).unwrap(), s.ve_time(6).unwrap());
    let mid = 0.5 * (t5 + t6);
    match s.step_of_ve_time(mid) {
        Err(ScoreError::OffGrid { nearest_step, .. }) => assert!(nearest_step == 5 || nearest_step == 6),
        other => panic!("expected OffGrid, got {other:?}"),
    }
    // The explicit rounding is still available, and says where it went.
    let (k, tk) = s.nearest_step(t5 * 1.001).unwrap();
    assert_eq!((k, tk), (5, t5));
    let tmax = s.ve_time(999).unwrap();
    assert!(matches!(s.step_of_ve_time(tmax * 2.0), Err(ScoreError::TimeOutOfRange { .. })));
    assert!(matches!(s.step_of_ve_time(s.ve_time(0).unwrap() / 2.0), Err(ScoreError::TimeOutOfRange { .. })));
    assert!(matches!(s.step_of_ve_time(0.0), Err(ScoreError::InvalidTime(_))));
    assert!(matches!(s.step_of_ve_time(f64::NAN), Err(ScoreError::InvalidTime(_))));
}

#[test]
fn continuous_vp_round_trip() {
    let s = LinearVpSde::default();
    for &tau in &[1e-6, 1e-3, 0.1, 0.5, 0.999, 1.0] {
        let t = s.ve_time(tau).unwrap();
        assert!((s.tau(t).unwrap() - tau).abs() < 1e-12 * tau.max(1e-3), "tau = {tau}");
    }
    assert!(matches!(s.tau(s.ve_time(1.0).unwrap() * 1.01), Err(ScoreError::TimeOutOfRange { .. })));
    assert!(s.ve_time(0.0).is_err() && s.ve_time(1.5).is_err());
    assert!(LinearVpSde::new(0.0, 1.0).is_err());
}

#[test]
fn geometric_ve_round_trip() {
    let s = GeometricVe::default();
    assert!((s.time(0.0) - 1e-4).abs() < 1e-16);
    assert!((s.time(1.0) - 2500.0).abs() < 1e-9);
    for &tau in &[0.0, 0.25, 0.5, 1.0] {
        assert!((s.tau(s.time(tau)).unwrap() - tau).abs() < 1e-12);
    }
    assert!(GeometricVe::new(1.0, 0.5).is_err());
    assert!(s.tau(-1.0).is_err());
}

/// The exact VP noise predictor of `N(0, diag(v))` on a DDPM grid, written in VP terms only:
/// `x_vp ~ N(0, ᾱ Σ + (1-ᾱ) I)`, `ε̂ = -√(1-ᾱ) s_vp = √(1-ᾱ) x_vp / (ᾱ v + 1 - ᾱ)`.
struct GaussianVpEps {
    var: Vec<f64>,
    schedule: DdpmSchedule,
}

impl VpEpsModel for GaussianVpEps {
    fn dim(&self) -> usize {
        self.var.len()
    }
    fn eps_into(&self, x: MatRef<'_, f64>, time: VpTime, mut out: MatMut<'_, f64>) -> Result<()> {
        let VpTime::Step(k) = time else { panic!("discrete model") };
        let a = self.schedule.alpha_bar(k)?;
        for j in 0..self.var.len() {
            for i in 0..x.nrows() {
                out[(i, j)] = (1.0 - a).sqrt() * x[(i, j)] / (a * self.var[j] + 1.0 - a);
            }
        }
        Ok(())
    }
}

#[test]
fn vp_adapter_matches_the_ve_score_and_its_inverse() {
    let var = [2.0, 1.0, 0.3, 0.05, 0.0];
    let schedule = DdpmSchedule::default();
    let ve = GaussianScore::from_variances(&var).unwrap();
    let vp = VpScore::discrete(GaussianVpEps { var: var.to_vec(), schedule: schedule.clone() }, schedule.clone());
    let back = VpScore::discrete(VeAsVp::new(ve.clone(), VpGrid::Discrete(schedule.clone())), schedule.clone());
    let x = gaussian_rows(16, &[4.0; 5], 3);
    for k in [0, 1, 10, 100, 500, 999] {
        let t = schedule.ve_time(k).unwrap();
        let exact = ve.score_batch(x.as_ref(), t).unwrap();
        assert!(rel_err(&vp.score_batch(x.as_ref(), t).unwrap(), &exact) < 1e-12, "VP model, k = {k}");
        assert!(rel_err(&back.score_batch(x.as_ref(), t).unwrap(), &exact) < 1e-12, "VE → VP → VE, k = {k}");
    }
    // Off-grid VE times reach neither model.
    let t = 0.5 * (schedule.ve_time(10).unwrap() + schedule.ve_time(11).unwrap());
    assert!(matches!(vp.score_batch(x.as_ref(), t), Err(ScoreError::OffGrid { .. })));
}

#[test]
fn continuous_vp_adapter_round_trip() {
    let var = [1.0, 0.1, 0.0];
    let sde = LinearVpSde::default();
    let ve = GaussianScore::from_variances(&var).unwrap();
    let back = VpScore::continuous(VeAsVp::new(ve.clone(), VpGrid::Continuous(sde)), sde);
    let x = Mat::from_fn(4, 3, |i, j| (i as f64 - 1.5) * (j as f64 + 0.5));
    for &t in &[1e-6, 1e-2, 1.0, 100.0] {
        let e = ve.score_batch(x.as_ref(), t).unwrap();
        assert!(rel_err(&back.score_batch(x.as_ref(), t).unwrap(), &e) < 1e-10, "t = {t}");
    }
    let tmax = sde.ve_time(1.0).unwrap();
    assert!(matches!(back.score_batch(x.as_ref(), tmax * 2.0), Err(ScoreError::TimeOutOfRange { .. })));
}
