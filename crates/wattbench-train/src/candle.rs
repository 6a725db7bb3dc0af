//! The candle trainer: the models written with candle-core tensor ops, gradients from
//! candle's autograd (`Var`, `backward`), and SGD applied to the `Var`s by hand. CPU only in
//! this build.
use candle_core::{Device, Tensor, Var};

use crate::backend::Trainer;
use crate::data::Dataset;
use crate::model::ModelConfig;
use crate::TrainError;

fn err(e: candle_core::Error) -> TrainError {
    // candle appends a backtrace when RUST_BACKTRACE is set; keep the message.
    let text = e.to_string();
    TrainError::Backend {
        backend: "candle",
        msg: text.lines().next().unwrap_or("").trim().to_string(),
    }
}

/// Parameters as `Var`s and the data set as tensors, on candle's CPU device.
pub struct CandleTrainer {
    model: ModelConfig,
    vars: Vec<Var>,
    xs: Vec<Tensor>,
    ys: Vec<Tensor>,
}

impl CandleTrainer {
    /// Uploads the initial parameters and every batch.
    pub fn new(
        device: &str,
        model: &ModelConfig,
        data: &Dataset,
        init: &[Vec<f32>],
    ) -> Result<Self, TrainError> {
        if device != "cpu" {
            return Err(TrainError::Unavailable {
                backend: "candle",
                reason: format!(
                    "device `{device}`: this build has candle's CPU device only (its CUDA \
                     kernels need nvcc at build time)"
                ),
            });
        }
        let dev = Device::Cpu;
        let vars = model
            .params()
            .iter()
            .zip(init)
            .map(|(p, v)| Var::from_slice(v, p.shape.as_slice(), &dev))
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(err)?;
        let upload = |v: &Vec<f32>, shape: &[usize]| Tensor::from_slice(v, shape, &dev);
        let xs = data
            .xs
            .iter()
            .map(|x| upload(x, &data.x_shape))
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(err)?;
        let ys = data
            .ys
            .iter()
            .map(|y| upload(y, &data.y_shape))
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(err)?;
        Ok(Self {
            model: *model,
            vars,
            xs,
            ys,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let p: Vec<&Tensor> = self.vars.iter().map(|v| v.as_tensor()).collect();
        match self.model {
            ModelConfig::Mlp(_) => {
                let a = x.matmul(p[0])?.broadcast_add(p[1])?.relu()?;
                let a = a.matmul(p[2])?.broadcast_add(p[3])?.tanh()?;
                a.matmul(p[4])?.broadcast_add(p[5])
            }
            ModelConfig::Cnn(c) => {
                let [k1, k2] = c.filters;
                let a = x
                    .conv2d(p[0], 1, 1, 1, 1)?
                    .broadcast_add(&p[1].reshape((1, k1, 1, 1))?)?
                    .relu()?;
                let a = a
                    .conv2d(p[2], 1, 2, 1, 1)?
                    .broadcast_add(&p[3].reshape((1, k2, 1, 1))?)?
                    .relu()?;
                a.flatten_from(1)?.matmul(p[4])?.broadcast_add(p[5])
            }
            ModelConfig::Lstm(l) => {
                let (hn, g) = (l.hidden, 4 * l.hidden);
                let batch = x.dim(1)?;
                // The input projection of every step in one GEMM, outside the recurrence.
                let xp = x
                    .reshape((l.seq * batch, l.input))?
                    .matmul(p[0])?
                    .broadcast_add(p[2])?
                    .reshape((l.seq, batch, g))?;
                let mut h: Option<Tensor> = None;
                let mut c: Option<Tensor> = None;
                for t in 0..l.seq {
                    let mut gates = xp.get(t)?;
                    if let Some(h) = &h {
                        gates = (gates + h.matmul(p[1])?)?;
                    }
                    let i = sigmoid(&gates.narrow(1, 0, hn)?)?;
                    let f = sigmoid(&gates.narrow(1, hn, hn)?)?;
                    let gg = gates.narrow(1, 2 * hn, hn)?.tanh()?;
                    let o = sigmoid(&gates.narrow(1, 3 * hn, hn)?)?;
                    let ig = (i * gg)?;
                    let cn = match &c {
                        Some(c) => ((f * c)? + ig)?,
                        None => ig,
                    };
                    h = Some((o * cn.tanh()?)?);
                    c = Some(cn);
                }
                h.expect("seq >= 1").matmul(p[3])?.broadcast_add(p[4])
            }
        }
    }

    fn mse(&self, bi: usize) -> candle_core::Result<Tensor> {
        let y = self.forward(&self.xs[bi])?;
        (y - &self.ys[bi])?.sqr()?.mean_all()
    }
}

fn sigmoid(x: &Tensor) -> candle_core::Result<Tensor> {
    (x.neg()?.exp()? + 1.0)?.recip()
}

impl Trainer for CandleTrainer {
    fn step(&mut self, bi: usize, lr: f64, want_loss: bool) -> Result<Option<f32>, TrainError> {
        let loss = self.mse(bi).map_err(err)?;
        let grads = loss.backward().map_err(err)?;
        for (k, v) in self.vars.iter().enumerate() {
            let g = grads
                .get(v.as_tensor())
                .ok_or_else(|| TrainError::Backend {
                    backend: "candle",
                    msg: format!("no gradient for parameter {k}"),
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

    fn loss(&mut self, bi: usize) -> Result<f32, TrainError> {
        self.mse(bi)
            .and_then(|l| l.detach().to_scalar::<f32>())
            .map_err(err)
    }

    fn sync(&mut self) -> Result<(), TrainError> {
        // CPU ops complete before they return.
        Ok(())
    }

    fn params(&mut self) -> Result<Vec<Vec<f32>>, TrainError> {
        self.vars
            .iter()
            .map(|v| v.as_tensor().flatten_all()?.to_vec1::<f32>())
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(err)
    }
}
