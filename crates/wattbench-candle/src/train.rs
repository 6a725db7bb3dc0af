//! The candle trainer: the models built from [`ops`](crate::ops) on candle tensors, gradients
//! from candle's autograd (`Var`, `backward`), and SGD applied to the `Var`s by hand.
//!
//! candle-core 0.11's backward computes both operands' gradients of every tracked matmul and
//! convolution, constants included: the first layer's gradient with respect to the input data
//! is computed every step (a GEMM for the MLP and for each LSTM step, a transposed convolution
//! for the CNN) though nothing uses it. Its FLOPs are not in the model's count, which is the
//! model's own work (tch, through PyTorch's autograd, skips them): the trainer's notes say so
//! on candle's training results ([`Trainer::notes`]).
use candle_core::{DType as CDType, Device, Tensor, Var};
use wattbench_core::model::{ModelConfig, TrainSetup, Trainer};
use wattbench_core::workload::{Cell, ConvParams};
use wattbench_core::BackendError;

use crate::ops::{self, Padding};
use crate::{err, upload};

/// Parameters as `Var`s and the data set as tensors, on one candle device.
pub(crate) struct CandleTrainer {
    device: Device,
    model: ModelConfig,
    batch: usize,
    vars: Vec<Var>,
    xs: Vec<Tensor>,
    ys: Vec<Tensor>,
}

impl CandleTrainer {
    /// Uploads the initial parameters and every batch.
    pub(crate) fn new(dev: Device, setup: &TrainSetup<'_>) -> Result<Self, BackendError> {
        let TrainSetup {
            model, data, init, ..
        } = *setup;
        let vars = model
            .params()
            .iter()
            .zip(init)
            .map(|(p, v)| Var::from_slice(v, p.shape.as_slice(), &dev))
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(err)?;
        let batches = |all: &[Vec<f32>], shape: &[usize]| {
            all.iter()
                .map(|v| upload(v, shape, CDType::F32, &dev))
                .collect::<candle_core::Result<Vec<_>>>()
                .map_err(err)
        };
        Ok(Self {
            device: dev.clone(),
            model: *model,
            batch: data.batch,
            vars,
            xs: batches(&data.xs, &data.x_shape)?,
            ys: batches(&data.ys, &data.y_shape)?,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let p: Vec<&Tensor> = self.vars.iter().map(|v| v.as_tensor()).collect();
        let linear = |a: &Tensor, w: &Tensor, b: &Tensor| a.matmul(w)?.broadcast_add(b);
        match self.model {
            ModelConfig::Mlp(_) => {
                let a = linear(x, p[0], p[1])?.relu()?;
                let a = linear(&a, p[2], p[3])?.tanh()?;
                linear(&a, p[4], p[5])
            }
            ModelConfig::Cnn(c) => {
                let conv = |a: &Tensor, w: &Tensor, b: &Tensor, shape: &ConvParams| {
                    ops::conv2d(shape, Padding::Symmetric(shape.pad_h), a, w)?
                        .broadcast_add(&b.reshape((1, shape.k, 1, 1))?)?
                        .relu()
                };
                let [c1, c2] = c.convs(x.dim(0)?);
                let a = conv(x, p[0], p[1], &c1)?;
                let a = conv(&a, p[2], p[3], &c2)?;
                linear(&a.flatten_from(1)?, p[4], p[5])
            }
            ModelConfig::Lstm(l) => {
                let mut h: Option<Tensor> = None;
                let mut c: Option<Tensor> = None;
                for t in 0..l.seq {
                    // Each step's input projection on its own (the same FLOPs as one GEMM over
                    // every step): slices of one projection would, in candle-core 0.11's
                    // backward, each scatter into a zero tensor of the whole of it (seq²
                    // traffic). The data's own slice is a constant, with no backward of its
                    // own; but candle-core 0.11's matmul backward computes both operands'
                    // gradients whenever the product is tracked, so each step's `x_t·Wx` also
                    // computes `dxp·Wxᵀ`, the data's gradient, which nothing uses and the FLOP
                    // count leaves out (`ModelConfig::flops`, rule 3; said in the result).
                    let xp = linear(&x.get(t)?, p[0], p[2])?;
                    let rec = h.as_ref().map(|h| h.matmul(p[1])).transpose()?;
                    let (h_new, c_new) = ops::cell_step(
                        Cell::Lstm,
                        l.hidden,
                        &xp,
                        rec.as_ref(),
                        h.as_ref(),
                        c.as_ref(),
                    )?;
                    h = Some(h_new);
                    c = c_new;
                }
                linear(&h.expect("seq >= 1"), p[3], p[4])
            }
        }
    }

    fn mse(&self, bi: usize) -> candle_core::Result<Tensor> {
        let y = self.forward(&self.xs[bi])?;
        (y - &self.ys[bi])?.sqr()?.mean_all()
    }
}

impl Trainer for CandleTrainer {
    fn step(&mut self, bi: usize, lr: f64, want_loss: bool) -> Result<Option<f32>, BackendError> {
        let loss = self.mse(bi).map_err(err)?;
        let grads = loss.backward().map_err(err)?;
        for (k, v) in self.vars.iter().enumerate() {
            let g = grads.get(v.as_tensor()).ok_or_else(|| {
                BackendError::failed("candle", format!("no gradient for parameter {k}"))
            })?;
            let updated = (v.as_tensor().detach() - (g * lr).map_err(err)?).map_err(err)?;
            v.set(&updated).map_err(err)?;
        }
        if want_loss {
            Ok(Some(loss.to_scalar::<f32>().map_err(err)?))
        } else {
            Ok(None)
        }
    }

    fn loss(&mut self, bi: usize) -> Result<f32, BackendError> {
        self.mse(bi)
            .and_then(|l| l.detach().to_scalar::<f32>())
            .map_err(err)
    }

    fn sync(&mut self) -> Result<(), BackendError> {
        // A no-op on the CPU (ops complete before they return); waits for the stream on CUDA.
        self.device.synchronize().map_err(err)
    }

    fn params(&mut self) -> Result<Vec<Vec<f32>>, BackendError> {
        self.vars
            .iter()
            .map(|v| v.as_tensor().flatten_all()?.to_vec1::<f32>())
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(err)
    }

    /// The gradient of the data this trainer's backward computes (module doc), with its size.
    fn notes(&self) -> Vec<String> {
        let b = self.batch as u64;
        // Multiply-adds of the first layer's input gradient, and what computes it.
        let (macs, what) = match self.model {
            ModelConfig::Mlp(m) => (
                b * (m.input * m.hidden[0]) as u64,
                "one GEMM of the first layer's size",
            ),
            ModelConfig::Cnn(c) => (
                b * (c.filters[0] * c.size * c.size * c.channels * 9) as u64,
                "a transposed convolution of the first convolution's size",
            ),
            ModelConfig::Lstm(l) => (
                b * (l.seq * l.input * 4 * l.hidden) as u64,
                "one [B,4H]x[4H,in] GEMM per time step",
            ),
        };
        let extra = 2 * macs;
        let counted = self.model.flops(self.batch).step;
        vec![format!(
            "candle's autograd also computes the gradient of the first layer's input, the data \
             ({what}: {} MFLOP per step, {:.1}% of the {} MFLOP counted), which the model does \
             not need and its FLOP count leaves out (the count is the model's own work; tch \
             skips it): candle's GFLOP/s and GFLOP/J understate the work it does, and a \
             candle/tch comparison compares what each framework does for the same model",
            wattbench_core::units::sig(extra as f64 / 1e6),
            100.0 * extra as f64 / counted as f64,
            wattbench_core::units::sig(counted as f64 / 1e6)
        )]
    }

    /// candle's CPU GEMMs' threads (its elementwise pool may differ: `describe` says both).
    fn threads(&self) -> Option<usize> {
        self.device
            .is_cpu()
            .then(candle_core::utils::get_num_threads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wattbench_core::model::{Dataset, ModelKind, Size};

    /// A trainer of `model` on the CPU, on one batch of `batch` samples (seed 3).
    fn cpu_trainer(model: ModelConfig, batch: usize) -> CandleTrainer {
        let data = Dataset::generate(&model, batch, 1, 3);
        let init = model.init_params(3);
        let setup = TrainSetup {
            model: &model,
            data: &data,
            init: &init,
            device: "cpu",
        };
        CandleTrainer::new(Device::Cpu, &setup).unwrap()
    }

    /// The extra work the training results note: candle-core's backward computes the gradient
    /// of the first layer's input, the data, which no parameter needs (a GEMM for the MLP, a
    /// transposed convolution for the CNN). When a candle release stops doing it, this fails
    /// and the trainer's note must go.
    #[test]
    fn candle_computes_the_gradient_of_the_input_data() {
        for kind in [ModelKind::Mlp, ModelKind::Cnn] {
            let t = cpu_trainer(ModelConfig::new(kind, Size::Tiny), 4);
            let grads = t.mse(0).unwrap().backward().unwrap();
            let dx = grads
                .get(&t.xs[0])
                .unwrap_or_else(|| panic!("{kind:?}: no gradient of the input data"));
            assert_eq!(dx.dims(), t.xs[0].dims(), "{kind:?}");
            let norm = dx
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                norm > 0.0,
                "{kind:?}: the data's gradient was computed as zero"
            );
        }
    }

    /// The note's figures at the default batches: the MLP's first GEMM, 8.4 MFLOP (6.9 % of
    /// the step's count); the CNN's first convolution, 14.2 MFLOP (9.4 %); the LSTM's
    /// per-step input GEMMs, 7.2 % (the review's hand counts). One batch each, the standard
    /// models: the note depends on the shapes only.
    #[test]
    fn the_note_gives_the_data_gradients_share() {
        for (kind, batch, said) in [
            (ModelKind::Mlp, 64, "8.389 MFLOP per step, 6.9%"),
            (ModelKind::Cnn, 64, "14.16 MFLOP per step, 9.4%"),
            (ModelKind::Lstm, 32, ", 7.2% of"),
        ] {
            let t = cpu_trainer(ModelConfig::new(kind, Size::Standard), batch);
            let notes = t.notes();
            assert_eq!(notes.len(), 1, "{notes:?}");
            assert!(notes[0].contains(said), "{kind:?}: {}", notes[0]);
            assert_eq!(t.threads(), Some(candle_core::utils::get_num_threads()));
        }
    }
}
