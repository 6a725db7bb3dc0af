//! The three models: sizes, parameter shapes, seeded initialisation, exact FLOP counts and an
//! f64 host forward pass (used for the teacher's targets, and as the reference the backends'
//! losses are checked against).
//!
//! - **MLP**: `x[B,in] → linear+ReLU → linear+tanh → linear → y[B,out]`.
//! - **CNN**: `x[B,C,S,S] → conv3x3(pad 1)+ReLU → conv3x3(pad 1, stride 2)+ReLU → flatten →
//!   linear → y[B,out]`.
//! - **LSTM**: `x[T,B,in]`; gates `x_t·Wx + h_{t-1}·Wh + b` in PyTorch's order (i, f, g, o),
//!   `h_{-1} = c_{-1} = 0` (so step 0 has no recurrent product and no `f·c`); the head reads
//!   the last hidden state: `y = h_{T-1}·Wo + bo`.
//!
//! Every layer has a bias. Weights of linear layers are stored `[in, out]` (`y = x·W + b`),
//! convolution filters `[K, C, 3, 3]`.
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::TrainError;

pub use wattbench_core::workload::E2eModel as ModelKind;

/// Multi-layer perceptron sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Input features.
    pub input: usize,
    /// Widths of the two hidden layers (ReLU, then tanh).
    pub hidden: [usize; 2],
    /// Outputs.
    pub output: usize,
}

/// Convolutional network sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CnnConfig {
    /// Input channels.
    pub channels: usize,
    /// Input height and width.
    pub size: usize,
    /// Filters of the two 3x3 convolutions (the second has stride 2).
    pub filters: [usize; 2],
    /// Outputs of the linear head.
    pub output: usize,
}

impl CnnConfig {
    /// Height and width after the stride-2 convolution.
    pub fn size2(&self) -> usize {
        (self.size + 2 - 3) / 2 + 1
    }
    /// Inputs of the linear head (flattened feature map).
    pub fn head_in(&self) -> usize {
        self.filters[1] * self.size2() * self.size2()
    }
}

/// LSTM sequence model sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LstmConfig {
    /// Input features per time step.
    pub input: usize,
    /// Hidden size H (the gates are 4H wide).
    pub hidden: usize,
    /// Sequence length T.
    pub seq: usize,
    /// Outputs of the linear head on the last hidden state.
    pub output: usize,
}

/// One model with its sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "lowercase")]
pub enum ModelConfig {
    /// MLP.
    Mlp(MlpConfig),
    /// CNN.
    Cnn(CnnConfig),
    /// LSTM.
    Lstm(LstmConfig),
}

/// A trainable tensor: name, shape and the fan-in its initialisation is scaled by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    /// Name (`w1`, `b1`, `k1`, `wx`, ...).
    pub name: &'static str,
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// Fan-in: initial values are uniform in ±1/√fan_in.
    pub fan_in: usize,
}

impl ParamSpec {
    fn new(name: &'static str, shape: &[usize], fan_in: usize) -> Self {
        Self {
            name,
            shape: shape.to_vec(),
            fan_in,
        }
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// FLOPs of one training step; see [`ModelConfig::flops`] for the counting rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flops {
    /// Forward pass including the loss.
    pub forward: u64,
    /// Backward pass.
    pub backward: u64,
    /// SGD update (2 per parameter).
    pub update: u64,
    /// forward + backward + update.
    pub step: u64,
}

/// Which size of a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    /// The size `wattbench train` uses: tens to hundreds of MFLOP per step.
    Standard,
    /// A few hundred kFLOP per step: quick checks and debug-build tests.
    Tiny,
}

impl Size {
    /// Both sizes.
    pub const ALL: [Size; 2] = [Size::Standard, Size::Tiny];
    /// Name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Size::Standard => "standard",
            Size::Tiny => "tiny",
        }
    }
}

impl ModelConfig {
    /// The model of `kind` at `size`.
    pub fn new(kind: ModelKind, size: Size) -> Self {
        match (kind, size) {
            (ModelKind::Mlp, Size::Standard) => ModelConfig::Mlp(MlpConfig {
                input: 128,
                hidden: [512, 512],
                output: 16,
            }),
            (ModelKind::Mlp, Size::Tiny) => ModelConfig::Mlp(MlpConfig {
                input: 16,
                hidden: [32, 32],
                output: 4,
            }),
            (ModelKind::Cnn, Size::Standard) => ModelConfig::Cnn(CnnConfig {
                channels: 3,
                size: 16,
                filters: [16, 32],
                output: 10,
            }),
            (ModelKind::Cnn, Size::Tiny) => ModelConfig::Cnn(CnnConfig {
                channels: 2,
                size: 8,
                filters: [4, 8],
                output: 3,
            }),
            (ModelKind::Lstm, Size::Standard) => ModelConfig::Lstm(LstmConfig {
                input: 16,
                hidden: 64,
                seq: 24,
                output: 8,
            }),
            (ModelKind::Lstm, Size::Tiny) => ModelConfig::Lstm(LstmConfig {
                input: 4,
                hidden: 16,
                seq: 6,
                output: 2,
            }),
        }
    }

    /// The model family.
    pub fn kind(&self) -> ModelKind {
        match self {
            ModelConfig::Mlp(_) => ModelKind::Mlp,
            ModelConfig::Cnn(_) => ModelKind::Cnn,
            ModelConfig::Lstm(_) => ModelKind::Lstm,
        }
    }

    /// Default mini-batch size of the model.
    pub fn default_batch(&self) -> usize {
        match self.kind() {
            ModelKind::Mlp | ModelKind::Cnn => 64,
            ModelKind::Lstm => 32,
        }
    }

    /// Default SGD learning rate: chosen so that the loss falls steadily on the teacher data
    /// within a few hundred steps without diverging.
    pub fn default_lr(&self) -> f64 {
        match self.kind() {
            ModelKind::Mlp => 0.2,
            ModelKind::Cnn => 0.2,
            ModelKind::Lstm => 0.5,
        }
    }

    /// Check every size is positive.
    pub fn validate(&self) -> Result<(), TrainError> {
        let dims: Vec<(&str, usize)> = match self {
            ModelConfig::Mlp(m) => vec![
                ("input", m.input),
                ("hidden[0]", m.hidden[0]),
                ("hidden[1]", m.hidden[1]),
                ("output", m.output),
            ],
            ModelConfig::Cnn(c) => vec![
                ("channels", c.channels),
                ("size", c.size),
                ("filters[0]", c.filters[0]),
                ("filters[1]", c.filters[1]),
                ("output", c.output),
            ],
            ModelConfig::Lstm(l) => vec![
                ("input", l.input),
                ("hidden", l.hidden),
                ("seq", l.seq),
                ("output", l.output),
            ],
        };
        match dims.iter().find(|(_, v)| *v == 0) {
            Some((n, _)) => Err(TrainError::Usage(format!(
                "{} model: {n} is 0; every size must be at least 1",
                self.kind().as_str()
            ))),
            None => Ok(()),
        }
    }

    /// Shape of one input sample (`[in]`, `[C,S,S]` or `[T,in]`).
    pub fn sample_shape(&self) -> Vec<usize> {
        match *self {
            ModelConfig::Mlp(m) => vec![m.input],
            ModelConfig::Cnn(c) => vec![c.channels, c.size, c.size],
            ModelConfig::Lstm(l) => vec![l.seq, l.input],
        }
    }

    /// Shape of a batch of inputs as the backends receive it: `[B,in]`, `[B,C,S,S]`, or
    /// time-major `[T,B,in]` for the LSTM.
    pub fn batch_shape(&self, batch: usize) -> Vec<usize> {
        match *self {
            ModelConfig::Mlp(m) => vec![batch, m.input],
            ModelConfig::Cnn(c) => vec![batch, c.channels, c.size, c.size],
            ModelConfig::Lstm(l) => vec![l.seq, batch, l.input],
        }
    }

    /// Outputs per sample.
    pub fn output(&self) -> usize {
        match *self {
            ModelConfig::Mlp(m) => m.output,
            ModelConfig::Cnn(c) => c.output,
            ModelConfig::Lstm(l) => l.output,
        }
    }

    /// Trainable tensors, in the order backends receive them.
    pub fn params(&self) -> Vec<ParamSpec> {
        match *self {
            ModelConfig::Mlp(m) => {
                let [h1, h2] = m.hidden;
                vec![
                    ParamSpec::new("w1", &[m.input, h1], m.input),
                    ParamSpec::new("b1", &[h1], m.input),
                    ParamSpec::new("w2", &[h1, h2], h1),
                    ParamSpec::new("b2", &[h2], h1),
                    ParamSpec::new("w3", &[h2, m.output], h2),
                    ParamSpec::new("b3", &[m.output], h2),
                ]
            }
            ModelConfig::Cnn(c) => {
                let [k1, k2] = c.filters;
                vec![
                    ParamSpec::new("k1", &[k1, c.channels, 3, 3], c.channels * 9),
                    ParamSpec::new("kb1", &[k1], c.channels * 9),
                    ParamSpec::new("k2", &[k2, k1, 3, 3], k1 * 9),
                    ParamSpec::new("kb2", &[k2], k1 * 9),
                    ParamSpec::new("wo", &[c.head_in(), c.output], c.head_in()),
                    ParamSpec::new("bo", &[c.output], c.head_in()),
                ]
            }
            ModelConfig::Lstm(l) => {
                let g = 4 * l.hidden;
                vec![
                    ParamSpec::new("wx", &[l.input, g], l.input),
                    ParamSpec::new("wh", &[l.hidden, g], l.hidden),
                    ParamSpec::new("b", &[g], l.hidden),
                    ParamSpec::new("wo", &[l.hidden, l.output], l.hidden),
                    ParamSpec::new("bo", &[l.output], l.hidden),
                ]
            }
        }
    }

    /// Number of trainable values.
    pub fn param_count(&self) -> u64 {
        self.params().iter().map(|p| p.numel() as u64).sum()
    }

    /// Seeded initial parameters: uniform in ±1/√fan_in (PyTorch's default bound), generated
    /// on the host with ChaCha8 so that every backend starts from the same values.
    pub fn init_params(&self, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        self.params()
            .iter()
            .map(|p| {
                let bound = 1.0 / (p.fan_in as f32).sqrt();
                (0..p.numel())
                    .map(|_| rng.random_range(-bound..bound))
                    .collect()
            })
            .collect()
    }

    /// FLOPs of one training step on a batch of `batch`, counted exactly under these rules:
    ///
    /// 1. A GEMM or convolution costs 2 per multiply-add (convolution padding taps counted, as
    ///    cuDNN and DeepBench do).
    /// 2. Every other arithmetic element operation costs 1: bias and gate adds, the LSTM cell
    ///    (`c = f·c + i·g`: 3, `h = o·tanh c`: 1; at step 0 `c = i·g` and `h`: 2), the loss
    ///    (subtract, square, sum: 3 per output). Activations (ReLU, tanh, σ) and the mean's
    ///    single division are not counted, as is customary.
    /// 3. Backward: every GEMM/convolution costs its forward once for the weight gradient and
    ///    once more for the input gradient, except where the input is data (the first layer:
    ///    autograd does not compute it); rule-2 operations cost twice their forward (core's
    ///    convention for elementwise backward).
    /// 4. The SGD update costs 2 per parameter (`w − lr·g`).
    pub fn flops(&self, batch: usize) -> Flops {
        let b = batch as u64;
        // (multiply-adds, whether the input gradient is computed)
        let (gemms, elementwise): (Vec<(u64, bool)>, u64) = match *self {
            ModelConfig::Mlp(m) => {
                let (i, [h1, h2], o) =
                    (m.input as u64, m.hidden.map(|h| h as u64), m.output as u64);
                (
                    vec![(b * i * h1, false), (b * h1 * h2, true), (b * h2 * o, true)],
                    b * (h1 + h2 + o) + 3 * b * o,
                )
            }
            ModelConfig::Cnn(c) => {
                let (ch, s, s2) = (c.channels as u64, c.size as u64, c.size2() as u64);
                let [k1, k2] = c.filters.map(|k| k as u64);
                let o = c.output as u64;
                let head_in = k2 * s2 * s2;
                (
                    vec![
                        (b * k1 * s * s * ch * 9, false),
                        (b * k2 * s2 * s2 * k1 * 9, true),
                        (b * head_in * o, true),
                    ],
                    b * (k1 * s * s + k2 * s2 * s2 + o) + 3 * b * o,
                )
            }
            ModelConfig::Lstm(l) => {
                let (i, h, t, o) = (
                    l.input as u64,
                    l.hidden as u64,
                    l.seq as u64,
                    l.output as u64,
                );
                let g = 4 * h;
                let gate_adds = t * b * g + (t - 1) * b * g;
                let cell = 2 * b * h + (t - 1) * 4 * b * h;
                (
                    vec![
                        (t * b * i * g, false),
                        ((t - 1) * b * h * g, true),
                        (b * h * o, true),
                    ],
                    gate_adds + cell + b * o + 3 * b * o,
                )
            }
        };
        let fwd_gemm: u64 = gemms.iter().map(|(m, _)| 2 * m).sum();
        let bwd_gemm: u64 = gemms
            .iter()
            .map(|&(m, dx)| 2 * m + if dx { 2 * m } else { 0 })
            .sum();
        let forward = fwd_gemm + elementwise;
        let backward = bwd_gemm + 2 * elementwise;
        let update = 2 * self.param_count();
        Flops {
            forward,
            backward,
            update,
            step: forward + backward + update,
        }
    }

    /// Forward pass of one sample in f64 on the host. `x` has [`ModelConfig::sample_shape`].
    pub fn host_forward(&self, params: &[Vec<f32>], x: &[f32]) -> Vec<f64> {
        let p = |i: usize| -> Vec<f64> { params[i].iter().map(|&v| v as f64).collect() };
        let x: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        match *self {
            ModelConfig::Mlp(m) => {
                let [h1, h2] = m.hidden;
                let a = linear(&x, &p(0), &p(1), m.input, h1)
                    .into_iter()
                    .map(|v| v.max(0.0))
                    .collect::<Vec<_>>();
                let a = linear(&a, &p(2), &p(3), h1, h2)
                    .into_iter()
                    .map(f64::tanh)
                    .collect::<Vec<_>>();
                linear(&a, &p(4), &p(5), h2, m.output)
            }
            ModelConfig::Cnn(c) => {
                let [k1, k2] = c.filters;
                let a = conv3x3(&x, &p(0), &p(1), c.channels, c.size, k1, 1);
                let a: Vec<f64> = a.into_iter().map(|v| v.max(0.0)).collect();
                let a = conv3x3(&a, &p(2), &p(3), k1, c.size, k2, 2);
                let a: Vec<f64> = a.into_iter().map(|v| v.max(0.0)).collect();
                linear(&a, &p(4), &p(5), c.head_in(), c.output)
            }
            ModelConfig::Lstm(l) => {
                let (hn, g) = (l.hidden, 4 * l.hidden);
                let (wx, wh, bias) = (p(0), p(1), p(2));
                let mut h = vec![0.0; hn];
                let mut c = vec![0.0; hn];
                let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
                for t in 0..l.seq {
                    let xt = &x[t * l.input..(t + 1) * l.input];
                    let mut gates = linear(xt, &wx, &bias, l.input, g);
                    if t > 0 {
                        for (k, gk) in gates.iter_mut().enumerate() {
                            *gk += (0..hn).map(|j| h[j] * wh[j * g + k]).sum::<f64>();
                        }
                    }
                    for j in 0..hn {
                        let i = sig(gates[j]);
                        let f = sig(gates[hn + j]);
                        let gg = gates[2 * hn + j].tanh();
                        let o = sig(gates[3 * hn + j]);
                        c[j] = if t > 0 { f * c[j] + i * gg } else { i * gg };
                        h[j] = o * c[j].tanh();
                    }
                }
                linear(&h, &p(3), &p(4), hn, l.output)
            }
        }
    }
}

/// `x[in]·W[in,out] + b`.
fn linear(x: &[f64], w: &[f64], b: &[f64], n_in: usize, n_out: usize) -> Vec<f64> {
    let mut y = b.to_vec();
    for (i, &xi) in x.iter().enumerate().take(n_in) {
        let row = &w[i * n_out..(i + 1) * n_out];
        for (yo, &wv) in y.iter_mut().zip(row) {
            *yo += xi * wv;
        }
    }
    y
}

/// 3x3 convolution of one `[C,S,S]` sample, padding 1, the given stride, plus bias.
fn conv3x3(
    x: &[f64],
    w: &[f64],
    b: &[f64],
    ch: usize,
    s: usize,
    k: usize,
    stride: usize,
) -> Vec<f64> {
    let so = (s + 2 - 3) / stride + 1;
    let mut y = vec![0.0; k * so * so];
    for ko in 0..k {
        for p in 0..so {
            for q in 0..so {
                let mut acc = b[ko];
                for ci in 0..ch {
                    for r in 0..3 {
                        let row = (p * stride + r) as isize - 1;
                        if row < 0 || row >= s as isize {
                            continue;
                        }
                        for cc in 0..3 {
                            let col = (q * stride + cc) as isize - 1;
                            if col < 0 || col >= s as isize {
                                continue;
                            }
                            acc += x[(ci * s + row as usize) * s + col as usize]
                                * w[((ko * ch + ci) * 3 + r) * 3 + cc];
                        }
                    }
                }
                y[(ko * so + p) * so + q] = acc;
            }
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flops_of_tiny_models_match_hand_counts() {
        // MLP 16-32-32-4, batch 2: GEMM MACs 2·16·32=1024, 2·32·32=2048, 2·32·4=256.
        let m = ModelConfig::new(ModelKind::Mlp, Size::Tiny).flops(2);
        let elem = 2 * (32 + 32 + 4) + 3 * 2 * 4;
        assert_eq!(m.forward, 2 * (1024 + 2048 + 256) + elem);
        assert_eq!(
            m.backward,
            2 * (1024 + 2048 + 256) + 2 * (2048 + 256) + 2 * elem
        );
        let params = 16 * 32 + 32 + 32 * 32 + 32 + 32 * 4 + 4;
        assert_eq!(m.update, 2 * params);
        assert_eq!(m.step, m.forward + m.backward + m.update);

        // CNN 2x8x8 → 4 (8x8) → 8 (4x4) → 3, batch 1.
        let c = ModelConfig::new(ModelKind::Cnn, Size::Tiny);
        let f = c.flops(1);
        let (c1, c2, head) = (4 * 64 * 2 * 9, 8 * 16 * 4 * 9, 128 * 3);
        let elem = 4 * 64 + 8 * 16 + 3 + 3 * 3;
        assert_eq!(f.forward, 2 * (c1 + c2 + head) + elem);
        assert_eq!(
            f.backward,
            2 * (c1 + c2 + head) + 2 * (c2 + head) + 2 * elem
        );

        // LSTM in 4, H 16, T 6, out 2, batch 1: G = 64.
        let l = ModelConfig::new(ModelKind::Lstm, Size::Tiny).flops(1);
        let (xp, rec, head) = (6 * 4 * 64, 5 * 16 * 64, 16 * 2);
        let elem = (6 * 64 + 5 * 64) + (2 * 16 + 5 * 4 * 16) + 2 + 3 * 2;
        assert_eq!(l.forward, 2 * (xp + rec + head) + elem);
        assert_eq!(
            l.backward,
            2 * (xp + rec + head) + 2 * (rec + head) + 2 * elem
        );
    }

    #[test]
    fn init_is_seeded_and_bounded() {
        let c = ModelConfig::new(ModelKind::Mlp, Size::Tiny);
        let (a, b) = (c.init_params(7), c.init_params(7));
        assert_eq!(a, b);
        assert_ne!(a, c.init_params(8));
        let bound = 1.0 / 4.0; // fan_in 16
        assert!(a[0].iter().all(|v| v.abs() <= bound));
        assert_eq!(a[0].len(), 16 * 32);
    }

    #[test]
    fn host_conv_matches_a_hand_computed_value() {
        // One channel 3x3 of ones, filter of ones: the centre sees 9, a corner 4 (padding 1).
        let x = vec![1.0; 9];
        let w = vec![1.0; 9];
        let y = conv3x3(&x, &w, &[0.5], 1, 3, 1, 1);
        assert_eq!(y[4], 9.5);
        assert_eq!(y[0], 4.5);
        let y2 = conv3x3(&x, &w, &[0.0], 1, 3, 1, 2);
        assert_eq!(y2, vec![4.0, 4.0, 4.0, 4.0]);
    }
}
