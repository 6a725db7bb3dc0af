//! The candle trainer: the models built from [`ops`](crate::ops) on candle tensors, gradients
//! from candle's autograd (`Var`, `backward`), and SGD applied to the `Var`s by hand.
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
                    // traffic). The data's own slice is a constant, with no backward.
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
}
