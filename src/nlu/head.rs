//! A classification head on sentence embeddings: multinomial logistic regression (softmax)
//! fitted with Adam from class-centroid initial weights, then temperature-scaled so that its
//! probabilities mean what they say (fitted on a held-aside fifth of the examples, then the
//! weights are refitted on all of them). Small enough to train in a second on the CPU.

use crate::vector::dot;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LinearHead {
    pub labels: Vec<String>,
    pub dim: usize,
    /// Row-major, `labels.len()` rows of `dim`.
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
    /// Softmax temperature (calibration).
    pub temperature: f32,
}

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub epochs: usize,
    pub learning_rate: f32,
    pub l2: f32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 120,
            learning_rate: 0.05,
            l2: 1e-4,
        }
    }
}

fn softmax(z: &mut [f32]) {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in z.iter_mut() {
        *v /= sum;
    }
}

impl LinearHead {
    pub fn logits(&self, x: &[f32]) -> Vec<f32> {
        self.weights
            .chunks_exact(self.dim)
            .zip(&self.bias)
            .map(|(w, b)| dot(w, x) + b)
            .collect()
    }

    /// Calibrated class probabilities, in `labels` order.
    pub fn probs(&self, x: &[f32]) -> Vec<f32> {
        let mut z = self.logits(x);
        let t = self.temperature.max(1e-3);
        z.iter_mut().for_each(|v| *v /= t);
        softmax(&mut z);
        z
    }

    /// The most likely label and its probability.
    pub fn top(&self, x: &[f32]) -> (&str, f32) {
        let p = self.probs(x);
        let (i, &best) = p
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap_or((0, &0.0));
        (self.labels.get(i).map(String::as_str).unwrap_or(""), best)
    }

    /// Fits a head on embeddings `x` with label indices `y` (into `labels`).
    pub fn train(x: &[Vec<f32>], y: &[usize], labels: Vec<String>, o: &TrainOptions) -> LinearHead {
        // Calibration: fit on four fifths, choose the temperature on the rest, refit on all.
        let (fit, held): (Vec<usize>, Vec<usize>) = (0..x.len()).partition(|i| i % 5 != 4);
        let mut temperature = 1.0;
        if held.len() >= 5 {
            let part = Self::fit(
                &fit.iter().map(|&i| x[i].clone()).collect::<Vec<_>>(),
                &fit.iter().map(|&i| y[i]).collect::<Vec<_>>(),
                labels.clone(),
                o,
            );
            let logits: Vec<Vec<f32>> = held.iter().map(|&i| part.logits(&x[i])).collect();
            let nll = |t: f32| -> f32 {
                logits
                    .iter()
                    .zip(held.iter().map(|&i| y[i]))
                    .map(|(z, c)| {
                        let mut z: Vec<f32> = z.iter().map(|v| v / t).collect();
                        softmax(&mut z);
                        -z[c].max(1e-9).ln()
                    })
                    .sum()
            };
            let mut best = (f32::INFINITY, 1.0);
            let mut t = 0.25;
            while t <= 8.0 {
                let l = nll(t);
                if l < best.0 {
                    best = (l, t);
                }
                t *= 1.1;
            }
            temperature = best.1;
        }
        let mut head = Self::fit(x, y, labels, o);
        head.temperature = temperature;
        head
    }

    fn fit(x: &[Vec<f32>], y: &[usize], labels: Vec<String>, o: &TrainOptions) -> LinearHead {
        use ndarray::{Array1, Array2, Axis};
        let k = labels.len();
        let dim = x.first().map(Vec::len).unwrap_or(0);
        let n = x.len();
        let xm = Array2::from_shape_fn((n, dim), |(i, j)| x[i][j]);
        let mut counts = vec![0usize; k];
        y.iter().for_each(|&c| counts[c] += 1);
        // Start from the class centroids (a nearest-centroid classifier), scaled.
        let mut w = Array2::<f32>::zeros((k, dim));
        for (i, &c) in y.iter().enumerate() {
            let mut row = w.row_mut(c);
            row += &xm.row(i);
        }
        for (c, n) in counts.iter().enumerate() {
            let mut row = w.row_mut(c);
            row *= 5.0 / (*n).max(1) as f32;
        }
        let mut b = Array1::<f32>::zeros(k);
        // Class weights so a label with many examples does not swamp the rest.
        let sw: Array1<f32> = y
            .iter()
            .map(|&c| n as f32 / (k as f32 * counts[c].max(1) as f32) / n.max(1) as f32)
            .collect();
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let mut mw = Array2::<f32>::zeros((k, dim));
        let mut vw = Array2::<f32>::zeros((k, dim));
        let mut mb = Array1::<f32>::zeros(k);
        let mut vb = Array1::<f32>::zeros(k);
        for epoch in 1..=o.epochs {
            // Gradient of the weighted cross-entropy: (softmax(XW' + b) - onehot) * weight.
            let mut g = xm.dot(&w.t()) + &b;
            for (i, mut row) in g.axis_iter_mut(Axis(0)).enumerate() {
                let mut z = row.to_vec();
                softmax(&mut z);
                z[y[i]] -= 1.0;
                for (r, v) in row.iter_mut().zip(z) {
                    *r = v * sw[i];
                }
            }
            let mut gw = g.t().dot(&xm);
            gw.scaled_add(o.l2, &w);
            let gb = g.sum_axis(Axis(0));
            let (c1, c2) = (1.0 - b1.powi(epoch as i32), 1.0 - b2.powi(epoch as i32));
            // One pass per parameter array (no temporaries: this runs unoptimised in tests).
            let adam = |p: &mut f32, m: &mut f32, v: &mut f32, g: f32| {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *p -= o.learning_rate * (*m / c1) / ((*v / c2).sqrt() + eps);
            };
            ndarray::Zip::from(&mut w)
                .and(&mut mw)
                .and(&mut vw)
                .and(&gw)
                .for_each(|p, m, v, &g| adam(p, m, v, g));
            ndarray::Zip::from(&mut b)
                .and(&mut mb)
                .and(&mut vb)
                .and(&gb)
                .for_each(|p, m, v, &g| adam(p, m, v, g));
        }
        LinearHead {
            labels,
            dim,
            weights: w.iter().copied().collect(),
            bias: b.to_vec(),
            temperature: 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: Vec<f32>) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    #[test]
    fn separates_clusters_and_calibrates() {
        // Three noisy clusters on the unit sphere in 8 dimensions.
        let mut rng = 12345u32;
        let mut noise = || {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            (rng as f32 / u32::MAX as f32 - 0.5) * 0.6
        };
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..60 {
            let c = i % 3;
            let v: Vec<f32> = (0..8)
                .map(|d| if d == c * 2 { 1.0 } else { 0.0 } + noise())
                .collect();
            x.push(unit(v));
            y.push(c);
        }
        let labels = vec!["a".into(), "b".into(), "c".into()];
        let head = LinearHead::train(&x, &y, labels, &TrainOptions::default());
        let right = x
            .iter()
            .zip(&y)
            .filter(|(xi, &c)| head.top(xi).0 == ["a", "b", "c"][c])
            .count();
        assert!(right >= 57, "{right}/60");
        assert!(head.temperature > 0.0);
        let p = head.probs(&x[0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        // A point half way between two classes is not confidently either.
        let mid = unit(vec![1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert!(head.top(&mid).1 < 0.9, "{:?}", head.probs(&mid));
        // Round trip through JSON (how heads are stored).
        let json = serde_json::to_string(&head).unwrap();
        assert_eq!(serde_json::from_str::<LinearHead>(&json).unwrap(), head);
    }
}
