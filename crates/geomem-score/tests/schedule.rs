//! Tests of the noise schedules.
use geomem_score::{DdpmSchedule, GeometricVe};

#[test]
fn ddpm_ve_time_is_monotone_and_inverts() {
    let s = DdpmSchedule::default();
    assert_eq!(s.steps(), 1000);
    let mut prev = 0.0;
    for k in 0..1000 {
        let t = s.ve_time(k).unwrap();
        assert!(t > prev);
        prev = t;
        assert_eq!(s.step_for_ve_time(t).unwrap(), k);
    }
    // ᾱ_0 = 1 - 1e-4 → t_0 = 1e-4 / (1 - 1e-4)
    assert!((s.ve_time(0).unwrap() - 1e-4 / (1.0 - 1e-4)).abs() < 1e-15);
    assert!(s.ve_time(1000).is_none());
    assert!(DdpmSchedule::linear(0.0, 0.02, 10).is_err());
    assert!(DdpmSchedule::linear(0.1, 0.02, 10).is_err());
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
