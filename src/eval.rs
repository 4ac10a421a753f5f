//! Accuracy measures: pixel confusion of a change mask against a truth raster.

use serde::Serialize;

/// Pixel counts of a change mask against the truth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PixelConfusion {
    /// Change in both.
    pub tp: u64,
    /// Change predicted, none in the truth.
    pub fp: u64,
    /// Change in the truth, none predicted (`fn` in JSON: the keyword is only Rust's problem).
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// No change in either.
    pub tn: u64,
    /// Pixels excluded by the ignore mask.
    pub ignored: u64,
    /// Pixels the detector reported unobserved (excluded from the scores).
    pub unobserved: u64,
    /// Truth change pixels among the unobserved ones.
    pub unobserved_truth_change: u64,
}

/// Scores derived from a confusion.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PixelMetrics {
    /// TP / (TP + FP).
    pub precision: f64,
    /// TP / (TP + FN).
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// TP / (TP + FP + FN).
    pub iou: f64,
    /// (TP + TN) / all scored pixels.
    pub overall_accuracy: f64,
    /// Cohen's kappa of the change class.
    pub kappa: f64,
}

impl PixelConfusion {
    /// Adds one pixel: `truth` change or not; `predicted` change, no change or `None` (unobserved).
    pub fn add(&mut self, truth: bool, predicted: Option<bool>, ignore: bool) {
        if ignore {
            self.ignored += 1;
            return;
        }
        match predicted {
            None => {
                self.unobserved += 1;
                if truth {
                    self.unobserved_truth_change += 1;
                }
            }
            Some(p) => match (truth, p) {
                (true, true) => self.tp += 1,
                (false, true) => self.fp += 1,
                (true, false) => self.fn_ += 1,
                (false, false) => self.tn += 1,
            },
        }
    }

    /// The scores (0 where undefined).
    pub fn metrics(&self) -> PixelMetrics {
        let (tp, fp, fn_, tn) = (
            self.tp as f64,
            self.fp as f64,
            self.fn_ as f64,
            self.tn as f64,
        );
        let div = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let precision = div(tp, tp + fp);
        let recall = div(tp, tp + fn_);
        let n = tp + fp + fn_ + tn;
        let po = div(tp + tn, n);
        let pe = div((tp + fp) * (tp + fn_) + (fn_ + tn) * (fp + tn), n * n);
        PixelMetrics {
            precision,
            recall,
            f1: div(2.0 * precision * recall, precision + recall),
            iou: div(tp, tp + fp + fn_),
            overall_accuracy: po,
            kappa: if (1.0 - pe).abs() < 1e-12 {
                0.0
            } else {
                (po - pe) / (1.0 - pe)
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_confusion() {
        let mut c = PixelConfusion::default();
        for _ in 0..8 {
            c.add(true, Some(true), false);
        }
        for _ in 0..2 {
            c.add(false, Some(true), false);
        }
        for _ in 0..2 {
            c.add(true, Some(false), false);
        }
        for _ in 0..88 {
            c.add(false, Some(false), false);
        }
        c.add(true, None, false);
        c.add(true, Some(true), true);
        let m = c.metrics();
        assert!((m.precision - 0.8).abs() < 1e-12 && (m.recall - 0.8).abs() < 1e-12);
        assert!((m.f1 - 0.8).abs() < 1e-12);
        assert!((m.iou - 8.0 / 12.0).abs() < 1e-12);
        assert!((m.overall_accuracy - 0.96).abs() < 1e-12);
        // pe = (10·10 + 90·90) / 100² = 0.82; kappa = (0.96 − 0.82) / 0.18.
        assert!((m.kappa - 0.14 / 0.18).abs() < 1e-9);
        assert_eq!(
            (c.unobserved, c.unobserved_truth_change, c.ignored),
            (1, 1, 1)
        );
    }
}
