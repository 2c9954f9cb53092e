//! Tick positions and labels the way a reader of a matplotlib figure expects them: log axes
//! at decades (`10⁻¹`, `1`, `100`, with 2 and 5 when a decade is too coarse) with minor ticks
//! at the other mantissas; linear axes at 1, 2, 2.5 or 5 times a power of ten.

/// Major ticks (position on the plotted axis, label) and minor tick positions.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticks {
    pub major: Vec<(f64, String)>,
    pub minor: Vec<f64>,
}

impl Ticks {
    /// The label of the major tick nearest to `v` (plotters asks for labels by position).
    pub fn label(&self, v: f64) -> String {
        let near = self.major.iter().min_by(|a, b| (a.0 - v).abs().total_cmp(&(b.0 - v).abs()));
        near.map(|m| m.1.clone()).unwrap_or_default()
    }
}

const SUPERSCRIPT: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];

/// `10^k` with a superscript exponent (`10⁻³`).
pub fn power_of_ten(k: i32) -> String {
    let mut s = String::from("10");
    if k < 0 {
        s.push('⁻');
    }
    s.extend(k.unsigned_abs().to_string().bytes().map(|b| SUPERSCRIPT[usize::from(b - b'0')]));
    s
}

/// The label of `m · 10^k` (`m` in 1..=9): plain decimals from 0.1 to 1000 except the
/// decades below 1, which read `10⁻¹`, `10⁻²` as in matplotlib; `2×10⁻³` further out.
pub fn log_label(m: u32, k: i32) -> String {
    match (m, k) {
        (1, 0..=3) => 10u64.pow(k as u32).to_string(),
        (1, _) => power_of_ten(k),
        (_, -1..=3) => plain(f64::from(m) * 10f64.powi(k), (-k).max(0) as usize),
        _ => format!("{m}×{}", power_of_ten(k)),
    }
}

fn plain(v: f64, decimals: usize) -> String {
    format!("{v:.decimals$}")
}

/// Ticks of a log axis whose plotted range is `[lo, hi]` in `log10` units.
pub fn log_ticks(lo: f64, hi: f64) -> Ticks {
    let (k0, k1) = (lo.ceil() as i32, hi.floor() as i32);
    let decades = k1 - k0 + 1;
    if decades >= 2 {
        let step = (decades + 6) / 7;
        let k_first = k0 + (step - k0.rem_euclid(step)) % step;
        let major: Vec<(f64, String)> =
            (k_first..=k1).step_by(step as usize).map(|k| (f64::from(k), log_label(1, k))).collect();
        let minor = if step == 1 {
            mantissas(lo, hi, &[2, 3, 4, 5, 6, 7, 8, 9])
        } else {
            (k0..=k1).filter(|k| (k - k_first).rem_euclid(step) != 0).map(f64::from).collect()
        };
        return Ticks { major, minor };
    }
    for set in [&[1, 2, 5][..], &[1, 2, 3, 4, 5, 6, 7, 8, 9][..]] {
        let major = labelled_mantissas(lo, hi, set);
        if major.len() >= 2 {
            let minor = mantissas(lo, hi, &[1, 2, 3, 4, 5, 6, 7, 8, 9])
                .into_iter()
                .filter(|v| major.iter().all(|m| (m.0 - v).abs() > 1e-9))
                .collect();
            return Ticks { major, minor };
        }
    }
    // Less than a factor of two: round values, as on a linear axis, placed on the log axis.
    let lin = linear_ticks(10f64.powf(lo), 10f64.powf(hi));
    let major = lin.major.into_iter().filter(|m| m.0 > 0.0).map(|(v, l)| (v.log10(), l)).collect();
    let minor = lin.minor.into_iter().filter(|&v| v > 0.0).map(f64::log10).collect();
    Ticks { major, minor }
}

fn mantissa_points(lo: f64, hi: f64, set: &[u32]) -> Vec<(u32, i32, f64)> {
    let (k0, k1) = (lo.floor() as i32, hi.ceil() as i32);
    (k0..=k1)
        .flat_map(|k| set.iter().map(move |&m| (m, k, f64::from(m).log10() + f64::from(k))))
        .filter(|&(_, _, v)| v >= lo - 1e-9 && v <= hi + 1e-9)
        .collect()
}

fn mantissas(lo: f64, hi: f64, set: &[u32]) -> Vec<f64> {
    mantissa_points(lo, hi, set).into_iter().map(|p| p.2).collect()
}

fn labelled_mantissas(lo: f64, hi: f64, set: &[u32]) -> Vec<(f64, String)> {
    mantissa_points(lo, hi, set).into_iter().map(|(m, k, v)| (v, log_label(m, k))).collect()
}

/// Ticks of a linear axis on `[lo, hi]`: about five at a step of 1, 2, 2.5 or 5 times a
/// power of ten, minor ticks at a fifth (a quarter for 2) of the step.
pub fn linear_ticks(lo: f64, hi: f64) -> Ticks {
    let span = (hi - lo).abs().max(1e-300);
    let e = (span / 5.0).log10().floor();
    let base = 10f64.powf(e);
    // The finest round step that gives at most seven ticks.
    let m = [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().find(|m| (span / (m * base)).floor() + 1.0 <= 7.0).unwrap_or(10.0);
    let step = m * base;
    let decimals = (-(e as i32) + i32::from(m == 2.5)).max(0) as usize;
    let sub = if m == 2.0 { 4.0 } else { 5.0 };
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    let major = (first..=last)
        .map(|i| {
            let v = i as f64 * step;
            let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
            (v, plain(v, decimals))
        })
        .collect();
    let minor_step = step / sub;
    let minor = ((lo / minor_step).ceil() as i64..=(hi / minor_step).floor() as i64)
        .map(|i| i as f64 * minor_step)
        .filter(|v| ((v / step).round() * step - v).abs() > minor_step * 1e-6)
        .collect();
    Ticks { major, minor }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(t: &Ticks) -> Vec<&str> {
        t.major.iter().map(|m| m.1.as_str()).collect()
    }

    #[test]
    fn decades_read_as_in_a_paper() {
        let t = log_ticks(-3.2, 2.4);
        assert_eq!(labels(&t), ["10⁻³", "10⁻²", "10⁻¹", "1", "10", "100"]);
        // Eight minor ticks a decade (2..9), inside the range only: 7-9 × 10⁻⁴, five whole
        // decades, 200.
        assert_eq!(t.minor.len(), 3 + 8 * 5 + 1);
        assert!(t.minor.iter().all(|&v| (-3.2..=2.4).contains(&v)));
    }

    #[test]
    fn a_narrow_log_range_gets_two_and_five() {
        let t = log_ticks(-0.9, 0.5);
        assert_eq!(labels(&t), ["0.2", "0.5", "1", "2"]);
        let t = log_ticks(-5.1, -4.2);
        assert_eq!(labels(&t), ["10⁻⁵", "2×10⁻⁵", "5×10⁻⁵"]);
    }

    #[test]
    fn a_log_range_within_a_few_percent_reads_as_round_values() {
        let t = log_ticks(0.94f64.log10(), 0.0);
        assert_eq!(labels(&t), ["0.94", "0.95", "0.96", "0.97", "0.98", "0.99", "1.00"]);
        assert!(t.major.iter().all(|m| m.0 <= 0.0 && m.0 >= 0.94f64.log10() - 1e-12));
    }

    #[test]
    fn a_wide_log_range_skips_decades_and_keeps_them_as_minor_ticks() {
        let t = log_ticks(-8.0, 4.0);
        assert!(t.major.len() <= 7, "{:?}", labels(&t));
        assert!(t.major.iter().all(|m| m.0.fract() == 0.0));
        assert_eq!(t.major.len() + t.minor.len(), 13);
    }

    #[test]
    fn linear_ticks_are_round_numbers() {
        assert_eq!(labels(&linear_ticks(0.0, 1.0)), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        assert_eq!(labels(&linear_ticks(-0.03, 0.97)), ["0.0", "0.2", "0.4", "0.6", "0.8"]);
        assert_eq!(labels(&linear_ticks(0.0, 30.0)), ["0", "5", "10", "15", "20", "25", "30"]);
        assert_eq!(labels(&linear_ticks(0.97, 52.9)), ["10", "20", "30", "40", "50"]);
        assert_eq!(labels(&linear_ticks(0.0, 1.0e4)), ["0", "2000", "4000", "6000", "8000", "10000"]);
        let t = linear_ticks(0.0, 2.5);
        assert_eq!(labels(&t), ["0.0", "0.5", "1.0", "1.5", "2.0", "2.5"]);
        assert!(t.minor.iter().all(|v| (0.0..=2.5).contains(v)));
    }

    #[test]
    fn superscripts() {
        assert_eq!(power_of_ten(-12), "10⁻¹²");
        assert_eq!(log_label(5, -4), "5×10⁻⁴");
        assert_eq!(log_label(5, -1), "0.5");
        assert_eq!(log_label(1, 3), "1000");
        assert_eq!(log_label(1, 4), "10⁴");
    }
}
