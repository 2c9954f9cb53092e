//! One interface for the closed forms of the empirical score's Jacobian spectrum:
//! [`SpectrumTheory`], implemented by Eq. 18/19 in each of its printed and derived forms
//! ([`JacobianForm`]) and by the authors' notebook ([`NotebookTheory`]), so a caller sets
//! any of them beside another on the same variances, times and points.

use crate::error::Result;
use crate::jacobian_model::{ClosedForm, EmpiricalJacobianModel};
use crate::notebook::NotebookTheory;

/// A closed form of the singular values of the empirical score's Jacobian.
pub trait SpectrumTheory {
    /// The value of each direction at time `t` and position `x`, in the order of the
    /// variances (not sorted), so that a value can be traced to its variance block.
    ///
    /// # Errors
    /// [`crate::RemError::InvalidTime`]; a wrong length or non-finite `x`.
    fn values_at(&self, t: f64, x: &[f64]) -> Result<Vec<f64>>;

    /// The times at `x` where the form's `φ` switch on (`t_c` and each direction's onset),
    /// sorted: where a `t`-grid must be refined not to step over an opening gap.
    ///
    /// # Errors
    /// A wrong length or non-finite `x`.
    fn onset_times_at(&self, x: &[f64]) -> Result<Vec<f64>>;
}

/// Eq. 18's model evaluated in one of its closed forms (Eq. 19 as printed, Eq. 43 as printed,
/// or the derived one; seed 001, Supp. D).
#[derive(Debug, Clone, PartialEq)]
pub struct JacobianForm {
    /// The model (variances, `N`, the condensation method of `φ`).
    pub model: EmpiricalJacobianModel,
    /// Which closed form.
    pub form: ClosedForm,
}

impl SpectrumTheory for JacobianForm {
    /// [`EmpiricalJacobianModel::closed_form_values_at`].
    fn values_at(&self, t: f64, x: &[f64]) -> Result<Vec<f64>> {
        self.model.closed_form_values_at(t, x, self.form)
    }
    /// [`EmpiricalJacobianModel::onset_times_at`].
    fn onset_times_at(&self, x: &[f64]) -> Result<Vec<f64>> {
        self.model.onset_times_at(x)
    }
}

impl SpectrumTheory for NotebookTheory {
    /// [`NotebookTheory::values_at`].
    fn values_at(&self, t: f64, x: &[f64]) -> Result<Vec<f64>> {
        NotebookTheory::values_at(self, t, x)
    }
    /// [`NotebookTheory::onset_times_at`].
    fn onset_times_at(&self, x: &[f64]) -> Result<Vec<f64>> {
        NotebookTheory::onset_times_at(self, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jacobian_model::CondensationMethod;

    /// Through the trait, every form gives its own values: the derived form's at `x = 0`
    /// equal `EmpiricalJacobianModel::closed_form_spectrum` sorted, the notebook's its
    /// `values`; at `t ≫ t_c` every form tends to the exact `1/(t + σ²)`.
    #[test]
    fn forms_through_the_trait() {
        let sigma2: Vec<f64> = [vec![1.0; 2], vec![0.3; 5], vec![0.0; 23]].concat();
        let model = EmpiricalJacobianModel::new(&sigma2, 1000.0).unwrap().with_condensation(CondensationMethod::Exact);
        let derived = JacobianForm { model: model.clone(), form: ClosedForm::Derived };
        let notebook = NotebookTheory::new(&sigma2, 1000.0, false).unwrap();
        let forms: [&dyn SpectrumTheory; 2] = [&derived, &notebook];
        let x = vec![0.0; 30];
        let t = 0.05;
        let mut v = forms[0].values_at(t, &x).unwrap();
        v.sort_by(|a, b| b.total_cmp(a));
        assert_eq!(v, model.closed_form_spectrum(t, ClosedForm::Derived).unwrap());
        assert_eq!(forms[1].values_at(t, &x).unwrap(), notebook.values(t).unwrap());
        for f in forms {
            let on = f.onset_times_at(&x).unwrap();
            assert!(!on.is_empty() && on.windows(2).all(|w| w[0] < w[1]), "{on:?}");
            let big = 1e4;
            for (s, v) in f.values_at(big, &x).unwrap().iter().zip(&sigma2) {
                assert!((s * (big + v) - 1.0).abs() < 1e-3, "{s} vs {}", 1.0 / (big + v));
            }
            assert!(f.values_at(0.0, &x).is_err() && f.values_at(t, &x[..3]).is_err());
        }
    }
}
