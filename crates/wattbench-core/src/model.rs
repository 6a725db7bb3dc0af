//! Whole-model workloads, the second kind of workload beside the kernel cases of
//! [`workload`](crate::workload): small models trained end to end (`wattbench train`).
//!
//! The three models (sizes, parameter shapes, seeded initialisation, exact FLOP counts and an
//! f64 host forward pass built from the [`reference`](mod@crate::reference) ops, used for the
//! teacher's targets and as the reference the trainers are checked against), the seeded data
//! set ([`Dataset`]), and the seam every framework trains through ([`Trainer`]).
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

use crate::backend::BackendError;
use crate::reference;
use crate::workload::{Cell, ConvParams, GemmParams, RnnParams};

/// A model family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// GEMM layers with ReLU/tanh.
    Mlp,
    /// Convolutions and a GEMM head.
    Cnn,
    /// An LSTM cell unrolled over T steps and a linear head.
    Lstm,
}

impl ModelKind {
    /// All models.
    pub const ALL: [ModelKind; 3] = [ModelKind::Mlp, ModelKind::Cnn, ModelKind::Lstm];
    /// Name as used on the command line and in result files.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Mlp => "mlp",
            ModelKind::Cnn => "cnn",
            ModelKind::Lstm => "lstm",
        }
    }
}

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
    /// The two convolutions over a batch of `n`: 3x3, padding 1, strides 1 and 2.
    pub fn convs(&self, n: usize) -> [ConvParams; 2] {
        let conv = |c, k, stride| ConvParams {
            n,
            c,
            h: self.size,
            w: self.size,
            k,
            r: 3,
            s: 3,
            pad_h: 1,
            pad_w: 1,
            stride_h: stride,
            stride_w: stride,
        };
        [
            conv(self.channels, self.filters[0], 1),
            conv(self.filters[0], self.filters[1], 2),
        ]
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

    /// Short stable label of the model and its sizes, e.g. `mlp_i128_h512x512_o16`.
    pub fn label(&self) -> String {
        match *self {
            ModelConfig::Mlp(m) => format!(
                "mlp_i{}_h{}x{}_o{}",
                m.input, m.hidden[0], m.hidden[1], m.output
            ),
            ModelConfig::Cnn(c) => format!(
                "cnn_c{}_s{}_f{}x{}_o{}",
                c.channels, c.size, c.filters[0], c.filters[1], c.output
            ),
            ModelConfig::Lstm(l) => {
                format!("lstm_i{}_h{}_t{}_o{}", l.input, l.hidden, l.seq, l.output)
            }
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
    ///    the model needs no gradient there, and PyTorch's autograd, so tch, does not compute
    ///    it); rule-2 operations cost twice their forward (as core's kernels count elementwise
    ///    backward; a recurrence there also counts its bias-gradient sums over the batch and
    ///    steps, under 1 % of a step, which this count leaves out).
    ///
    /// The count is the model's own work, the same for every framework. A framework may do
    /// more: candle-core 0.11's autograd computes both operands' gradients of every tracked
    /// matmul and convolution, the data's included (the first layer's input gradient: one
    /// GEMM or transposed convolution the count leaves out), so candle's GFLOP/s and GFLOP/J
    /// understate the work it does; its training results say so in their energy notes.
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

    /// Forward pass of one sample in f64 on the host, with the reference ops. `x` has
    /// [`ModelConfig::sample_shape`]; `params` are in [`ModelConfig::params`] order.
    pub fn host_forward(&self, params: &[Vec<f64>], x: &[f32]) -> Vec<f64> {
        let p = |i: usize| -> &[f64] { &params[i] };
        let x: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let relu = |v: Vec<f64>| v.into_iter().map(|v| v.max(0.0)).collect::<Vec<_>>();
        match *self {
            ModelConfig::Mlp(m) => {
                let [h1, h2] = m.hidden;
                let a = relu(linear(&x, p(0), p(1), m.input, h1));
                let a: Vec<f64> = linear(&a, p(2), p(3), h1, h2)
                    .into_iter()
                    .map(f64::tanh)
                    .collect();
                linear(&a, p(4), p(5), h2, m.output)
            }
            ModelConfig::Cnn(c) => {
                let [c1, c2] = c.convs(1);
                let a = relu(conv_bias(&c1, &x, p(0), p(1)));
                let a = relu(conv_bias(&c2, &a, p(2), p(3)));
                linear(&a, p(4), p(5), c.head_in(), c.output)
            }
            ModelConfig::Lstm(l) => {
                // The input projection xp = x_t·Wx + b, then the reference LSTM over T steps
                // from zero states (step 0 then has no recurrent product and no f·c).
                let g = 4 * l.hidden;
                let xp: Vec<f64> = (0..l.seq)
                    .flat_map(|t| {
                        linear(&x[t * l.input..(t + 1) * l.input], p(0), p(2), l.input, g)
                    })
                    .collect();
                let r = RnnParams::new(Cell::Lstm, l.hidden, 1, l.seq);
                let zeros = vec![0.0; l.hidden];
                let no_bias = vec![0.0; g];
                let x = reference::RnnInputs {
                    xp: &xp,
                    w: p(1),
                    b: &no_bias,
                    h0: &zeros,
                    c0: Some(&zeros),
                };
                let hs = reference::rnn(&r, x);
                let h_last = &hs[(l.seq - 1) * l.hidden..];
                linear(h_last, p(3), p(4), l.hidden, l.output)
            }
        }
    }
}

/// `x[in]·W[in,out] + b` with the reference GEMM.
fn linear(x: &[f64], w: &[f64], b: &[f64], n_in: usize, n_out: usize) -> Vec<f64> {
    let g = GemmParams::new(1, n_out, n_in);
    let mut y = reference::gemm(&g, &x[..n_in], w);
    for (yo, bv) in y.iter_mut().zip(b) {
        *yo += bv;
    }
    y
}

/// The reference convolution of one sample plus a bias per filter.
fn conv_bias(c: &ConvParams, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    let plane = c.p() * c.q();
    let mut y = reference::conv2d(c, x, w);
    for (i, v) in y.iter_mut().enumerate() {
        *v += b[i / plane];
    }
    y
}

// Seeded synthetic data from a fixed random teacher, identical on every backend.
//
// The teacher is the student's own architecture with its own seeded weights. Inputs are
// uniform in ±√3 (zero mean, unit variance); targets are the teacher's f64 outputs,
// standardised per output over the data set (zero mean, unit variance), so that predicting
// zero scores an MSE of about 1 and the task is learnable exactly (a standardisation is an
// affine map the student's head can absorb). Everything is generated on the host in f32 and
// laid out per batch in the shape the backends take ([`ModelConfig::batch_shape`]).

/// Mixed into the seed for the teacher's weights, so that teacher and student differ.
const TEACHER_SEED: u64 = 0x7eac_4e12_d00d_5eed;
/// Mixed into the seed for the inputs.
const INPUT_SEED: u64 = 0x1a9b_07c3_5a11_da7a;

/// A fixed training set cut into equal batches.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Samples per batch.
    pub batch: usize,
    /// Inputs per batch, in [`ModelConfig::batch_shape`] layout.
    pub xs: Vec<Vec<f32>>,
    /// Targets per batch, `[B, out]`.
    pub ys: Vec<Vec<f32>>,
    /// Shape of one input batch.
    pub x_shape: Vec<usize>,
    /// Shape of one target batch.
    pub y_shape: Vec<usize>,
}

/// How the data set was made, for the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// Samples in the data set (batches × batch).
    pub samples: usize,
    /// Batches per epoch.
    pub batches_per_epoch: usize,
    /// Teacher and input description.
    pub teacher: String,
}

impl Dataset {
    /// Generates `batches` batches of `batch` samples for `model` from `seed`.
    pub fn generate(model: &ModelConfig, batch: usize, batches: usize, seed: u64) -> Dataset {
        let n = batch * batches;
        let teacher: Vec<Vec<f64>> = model
            .init_params(seed ^ TEACHER_SEED)
            .iter()
            .map(|p| p.iter().map(|&v| v as f64).collect())
            .collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ INPUT_SEED);
        let sample_len: usize = model.sample_shape().iter().product();
        let a = 3f32.sqrt();
        let inputs: Vec<Vec<f32>> = (0..n)
            .map(|_| (0..sample_len).map(|_| rng.random_range(-a..a)).collect())
            .collect();
        let out = model.output();
        let raw: Vec<Vec<f64>> = inputs
            .iter()
            .map(|x| model.host_forward(&teacher, x))
            .collect();
        // Standardise each output over the data set.
        let mut mean = vec![0.0; out];
        let mut var = vec![0.0; out];
        for y in &raw {
            for (m, v) in mean.iter_mut().zip(y) {
                *m += v / n as f64;
            }
        }
        for y in &raw {
            for ((s, v), m) in var.iter_mut().zip(y).zip(&mean) {
                *s += (v - m) * (v - m) / n as f64;
            }
        }
        let std: Vec<f64> = var
            .iter()
            .map(|v| if v.sqrt() > 1e-12 { v.sqrt() } else { 1.0 })
            .collect();

        let mut xs = Vec::with_capacity(batches);
        let mut ys = Vec::with_capacity(batches);
        for bi in 0..batches {
            let rows = &inputs[bi * batch..(bi + 1) * batch];
            let x = match *model {
                // Time-major [T, B, in] for the LSTM.
                ModelConfig::Lstm(l) => {
                    let mut x = Vec::with_capacity(l.seq * batch * l.input);
                    for t in 0..l.seq {
                        for r in rows {
                            x.extend_from_slice(&r[t * l.input..(t + 1) * l.input]);
                        }
                    }
                    x
                }
                _ => rows.concat(),
            };
            let y: Vec<f32> = raw[bi * batch..(bi + 1) * batch]
                .iter()
                .flat_map(|y| {
                    y.iter()
                        .zip(&mean)
                        .zip(&std)
                        .map(|((v, m), s)| ((v - m) / s) as f32)
                })
                .collect();
            xs.push(x);
            ys.push(y);
        }
        Dataset {
            batch,
            xs,
            ys,
            x_shape: model.batch_shape(batch),
            y_shape: vec![batch, out],
        }
    }

    /// Number of batches (steps per epoch).
    pub fn batches(&self) -> usize {
        self.xs.len()
    }

    /// The report's description of this data set.
    pub fn info(&self) -> DatasetInfo {
        DatasetInfo {
            samples: self.batch * self.batches(),
            batches_per_epoch: self.batches(),
            teacher: "fixed random teacher of the same architecture (its own seeded weights); \
                      inputs uniform in ±√3; targets standardised per output (mean 0, variance 1) \
                      over the data set; loss MSE"
                .into(),
        }
    }

    /// MSE of `params` on batch `bi`, computed on the host in f64.
    pub fn host_loss(&self, model: &ModelConfig, params: &[Vec<f64>], bi: usize) -> f64 {
        let sample_len: usize = model.sample_shape().iter().product();
        let out = model.output();
        let x = &self.xs[bi];
        let mut sum = 0.0;
        for s in 0..self.batch {
            let sample: Vec<f32> = match *model {
                ModelConfig::Lstm(l) => (0..l.seq)
                    .flat_map(|t| {
                        let off = (t * self.batch + s) * l.input;
                        x[off..off + l.input].iter().copied()
                    })
                    .collect(),
                _ => x[s * sample_len..(s + 1) * sample_len].to_vec(),
            };
            let y = model.host_forward(params, &sample);
            for (o, v) in y.iter().enumerate() {
                let d = v - self.ys[bi][s * out + o] as f64;
                sum += d * d;
            }
        }
        sum / (self.batch * out) as f64
    }
}

/// What a trainer starts from: the model, the device, the data set and the initial
/// parameters (in [`ModelConfig::params`] order).
#[derive(Clone, Copy, Debug)]
pub struct TrainSetup<'a> {
    /// Model and sizes.
    pub model: &'a ModelConfig,
    /// Device name.
    pub device: &'a str,
    /// Every batch.
    pub data: &'a Dataset,
    /// Initial parameters.
    pub init: &'a [Vec<f32>],
}

/// A model, its data and its optimiser state on one framework and device (built by
/// [`Backend::trainer`](crate::Backend::trainer), uploads done). `sync` is mandatory and
/// bounds every timed step, as for kernels.
pub trait Trainer {
    /// One SGD step on batch `bi`: forward, MSE loss, backward, `w ← w − lr·∂L/∂w`. Returns
    /// the loss (before the update) when `want_loss` is set; reading it back synchronises.
    fn step(&mut self, bi: usize, lr: f64, want_loss: bool) -> Result<Option<f32>, BackendError>;
    /// The loss on batch `bi` without updating (no gradients recorded).
    fn loss(&mut self, bi: usize) -> Result<f32, BackendError>;
    /// Waits until queued device work has finished.
    fn sync(&mut self) -> Result<(), BackendError>;
    /// Current parameters, copied to the host, in [`ModelConfig::params`] order.
    fn params(&mut self) -> Result<Vec<Vec<f32>>, BackendError>;
    /// Peak device memory in bytes, where the backend can tell.
    fn device_peak_bytes(&mut self) -> Option<u64> {
        None
    }
    /// What a reader of this framework's figures must know of the work it does beside the
    /// model's counted FLOPs ([`ModelConfig::flops`]), e.g. gradients the model does not need:
    /// one note each, recorded with the result's energy notes.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
    /// Threads the framework computes with on a CPU, where it can tell (null on a GPU): a
    /// projection holds for the same count.
    fn threads(&self) -> Option<usize> {
        None
    }
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
    fn cnn_layers_are_3x3_pad_1_with_strides_1_and_2() {
        let c = CnnConfig {
            channels: 1,
            size: 3,
            filters: [1, 1],
            output: 1,
        };
        let [c1, c2] = c.convs(1);
        // One channel 3x3 of ones, filter of ones: the centre sees 9, a corner 4 (padding 1).
        let y = conv_bias(&c1, &[1.0; 9], &[1.0; 9], &[0.5]);
        assert_eq!((y[4], y[0]), (9.5, 4.5));
        assert_eq!(conv_bias(&c2, &[1.0; 9], &[1.0; 9], &[0.0]), vec![4.0; 4]);
        assert_eq!((c2.p(), c.size2()), (2, 2));
    }

    #[test]
    fn data_is_seeded_standardised_and_laid_out_per_batch() {
        for kind in ModelKind::ALL {
            let m = ModelConfig::new(kind, Size::Tiny);
            let d = Dataset::generate(&m, 8, 4, 3);
            let again = Dataset::generate(&m, 8, 4, 3);
            assert_eq!(d.xs, again.xs);
            assert_eq!(d.ys, again.ys);
            assert_ne!(d.ys, Dataset::generate(&m, 8, 4, 4).ys);
            assert_eq!(d.batches(), 4);
            assert_eq!(d.xs[0].len(), d.x_shape.iter().product::<usize>());
            let all: Vec<f64> = d.ys.iter().flatten().map(|&v| v as f64).collect();
            let mean = all.iter().sum::<f64>() / all.len() as f64;
            let var = all.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / all.len() as f64;
            assert!(
                mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
                "{kind:?}: {mean} {var}"
            );
            // The teacher itself scores (near) zero loss up to the standardisation, a zero
            // predictor about 1: the targets are learnable and not trivial.
            let zeros: Vec<Vec<f64>> = m.params().iter().map(|p| vec![0.0; p.numel()]).collect();
            let l0 = d.host_loss(&m, &zeros, 0);
            assert!(l0 > 0.2 && l0 < 5.0, "{kind:?}: {l0}");
        }
    }
}
