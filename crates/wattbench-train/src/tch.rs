//! The tch trainer: the models written with libtorch ops through tch, gradients from
//! libtorch's autograd, SGD applied in place under `no_grad`. CPU, and CUDA when libtorch sees
//! a GPU.
use tch::{Device, Kind, Tensor};

use crate::backend::Trainer;
use crate::data::Dataset;
use crate::model::ModelConfig;
use crate::TrainError;

fn err(e: tch::TchError) -> TrainError {
    TrainError::Backend {
        backend: "tch",
        msg: e.to_string(),
    }
}

/// Parameters (requiring gradients) and the data set as libtorch tensors on one device.
pub struct TchTrainer {
    model: ModelConfig,
    params: Vec<Tensor>,
    xs: Vec<Tensor>,
    ys: Vec<Tensor>,
    device: Device,
}

fn upload(v: &[f32], shape: &[usize], d: Device) -> Result<Tensor, tch::TchError> {
    let shape: Vec<i64> = shape.iter().map(|&s| s as i64).collect();
    Tensor::f_from_slice(v)?.f_reshape(&shape)?.f_to_device(d)
}

impl TchTrainer {
    /// Uploads the initial parameters and every batch.
    pub fn new(
        device: &str,
        model: &ModelConfig,
        data: &Dataset,
        init: &[Vec<f32>],
    ) -> Result<Self, TrainError> {
        let d = match device {
            "cpu" => Device::Cpu,
            "cuda" if tch::Cuda::is_available() => Device::Cuda(0),
            _ => {
                return Err(TrainError::Unavailable {
                    backend: "tch",
                    reason: format!("libtorch sees no `{device}` device"),
                })
            }
        };
        let params = model
            .params()
            .iter()
            .zip(init)
            .map(|(p, v)| Ok(upload(v, &p.shape, d)?.set_requires_grad(true)))
            .collect::<Result<Vec<_>, tch::TchError>>()
            .map_err(err)?;
        let xs = data
            .xs
            .iter()
            .map(|x| upload(x, &data.x_shape, d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let ys = data
            .ys
            .iter()
            .map(|y| upload(y, &data.y_shape, d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(Self {
            model: *model,
            params,
            xs,
            ys,
            device: d,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor, tch::TchError> {
        let p = &self.params;
        match self.model {
            ModelConfig::Mlp(_) => {
                let a = x.f_matmul(&p[0])?.f_add(&p[1])?.f_relu()?;
                let a = a.f_matmul(&p[2])?.f_add(&p[3])?.f_tanh()?;
                a.f_matmul(&p[4])?.f_add(&p[5])
            }
            ModelConfig::Cnn(_) => {
                let a = x
                    .f_conv2d(&p[0], Some(&p[1]), [1, 1], [1, 1], [1, 1], 1)?
                    .f_relu()?;
                let a = a
                    .f_conv2d(&p[2], Some(&p[3]), [2, 2], [1, 1], [1, 1], 1)?
                    .f_relu()?;
                a.f_flatten(1, -1)?.f_matmul(&p[4])?.f_add(&p[5])
            }
            ModelConfig::Lstm(l) => {
                let (hn, g) = (l.hidden as i64, 4 * l.hidden as i64);
                let (seq, input) = (l.seq as i64, l.input as i64);
                let batch = x.size()[1];
                // The input projection of every step in one GEMM, outside the recurrence.
                let xp = x
                    .f_reshape([seq * batch, input])?
                    .f_matmul(&p[0])?
                    .f_add(&p[2])?
                    .f_reshape([seq, batch, g])?;
                let mut h: Option<Tensor> = None;
                let mut c: Option<Tensor> = None;
                for t in 0..seq {
                    let mut gates = xp.f_get(t)?;
                    if let Some(h) = &h {
                        gates = gates.f_add(&h.f_matmul(&p[1])?)?;
                    }
                    let i = gates.f_narrow(1, 0, hn)?.f_sigmoid()?;
                    let f = gates.f_narrow(1, hn, hn)?.f_sigmoid()?;
                    let gg = gates.f_narrow(1, 2 * hn, hn)?.f_tanh()?;
                    let o = gates.f_narrow(1, 3 * hn, hn)?.f_sigmoid()?;
                    let ig = i.f_mul(&gg)?;
                    let cn = match &c {
                        Some(c) => f.f_mul(c)?.f_add(&ig)?,
                        None => ig,
                    };
                    h = Some(o.f_mul(&cn.f_tanh()?)?);
                    c = Some(cn);
                }
                h.expect("seq >= 1").f_matmul(&p[3])?.f_add(&p[4])
            }
        }
    }

    fn mse(&self, bi: usize) -> Result<Tensor, tch::TchError> {
        let y = self.forward(&self.xs[bi])?;
        y.f_sub(&self.ys[bi])?.f_square()?.f_mean(Kind::Float)
    }
}

impl Trainer for TchTrainer {
    fn step(&mut self, bi: usize, lr: f64, want_loss: bool) -> Result<Option<f32>, TrainError> {
        for p in self.params.iter_mut() {
            p.zero_grad();
        }
        let loss = self.mse(bi).map_err(err)?;
        loss.f_backward().map_err(err)?;
        {
            let _guard = tch::no_grad_guard();
            for p in self.params.iter_mut() {
                let step = p.grad().f_mul_scalar(lr).map_err(err)?;
                let _ = p.f_sub_(&step).map_err(err)?;
            }
        }
        if want_loss {
            Ok(Some(f32::try_from(&loss).map_err(err)?))
        } else {
            Ok(None)
        }
    }

    fn loss(&mut self, bi: usize) -> Result<f32, TrainError> {
        let _guard = tch::no_grad_guard();
        let l = self.mse(bi).map_err(err)?;
        f32::try_from(&l).map_err(err)
    }

    fn sync(&mut self) -> Result<(), TrainError> {
        if let Device::Cuda(i) = self.device {
            tch::Cuda::synchronize(i as i64);
        }
        Ok(())
    }

    fn params(&mut self) -> Result<Vec<Vec<f32>>, TrainError> {
        self.params
            .iter()
            .map(|p| {
                let flat = p
                    .f_detach()?
                    .f_flatten(0, -1)?
                    .f_to_device(Device::Cpu)?
                    .f_to_kind(Kind::Float)?;
                Vec::<f32>::try_from(&flat)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)
    }
}
