//! The tch trainer: the models built from [`ops`](crate::ops) on libtorch tensors, gradients
//! from libtorch's autograd, SGD applied in place under `no_grad`.
use tch::{Device, Kind, Tensor};
use wattbench_core::model::{ModelConfig, TrainSetup, Trainer};
use wattbench_core::workload::Cell;
use wattbench_core::BackendError;

use crate::{download, err, ops, upload};

/// Parameters (requiring gradients) and the data set as libtorch tensors on one device.
pub(crate) struct TchTrainer {
    model: ModelConfig,
    params: Vec<Tensor>,
    xs: Vec<Tensor>,
    ys: Vec<Tensor>,
    device: Device,
}

impl TchTrainer {
    /// Uploads the initial parameters and every batch.
    pub(crate) fn new(d: Device, setup: &TrainSetup<'_>) -> Result<Self, BackendError> {
        let TrainSetup {
            model, data, init, ..
        } = *setup;
        let params = model
            .params()
            .iter()
            .zip(init)
            .map(|(p, v)| Ok(upload(v, &p.shape, Kind::Float, d)?.set_requires_grad(true)))
            .collect::<tch::Result<Vec<_>>>()
            .map_err(err)?;
        let batches = |all: &[Vec<f32>], shape: &[usize]| {
            all.iter()
                .map(|v| upload(v, shape, Kind::Float, d))
                .collect::<tch::Result<Vec<_>>>()
                .map_err(err)
        };
        Ok(Self {
            model: *model,
            params,
            xs: batches(&data.xs, &data.x_shape)?,
            ys: batches(&data.ys, &data.y_shape)?,
            device: d,
        })
    }

    fn forward(&self, x: &Tensor) -> tch::Result<Tensor> {
        let p = &self.params;
        let linear = |a: &Tensor, w: &Tensor, b: &Tensor| a.f_matmul(w)?.f_add(b);
        match self.model {
            ModelConfig::Mlp(_) => {
                let a = linear(x, &p[0], &p[1])?.f_relu()?;
                let a = linear(&a, &p[2], &p[3])?.f_tanh()?;
                linear(&a, &p[4], &p[5])
            }
            ModelConfig::Cnn(c) => {
                let [c1, c2] = c.convs(x.size()[0] as usize);
                let a = ops::conv2d(&c1, x, &p[0], Some(&p[1]))?.f_relu()?;
                let a = ops::conv2d(&c2, &a, &p[2], Some(&p[3]))?.f_relu()?;
                linear(&a.f_flatten(1, -1)?, &p[4], &p[5])
            }
            ModelConfig::Lstm(l) => {
                let (seq, input) = (l.seq as i64, l.input as i64);
                let batch = x.size()[1];
                // The input projection of every step in one GEMM, outside the recurrence.
                let xp = linear(&x.f_reshape([seq * batch, input])?, &p[0], &p[2])?.f_reshape([
                    seq,
                    batch,
                    4 * l.hidden as i64,
                ])?;
                let mut h: Option<Tensor> = None;
                let mut c: Option<Tensor> = None;
                // One op for every step's view (its backward is one stack; a `get` per step
                // would scatter into a zero tensor of the whole `xp` each).
                for x in &xp.f_unbind(0)? {
                    let rec = h.as_ref().map(|h| h.f_matmul(&p[1])).transpose()?;
                    let (h_new, c_new) = ops::cell_step(
                        Cell::Lstm,
                        l.hidden,
                        x,
                        rec.as_ref(),
                        h.as_ref(),
                        c.as_ref(),
                    )?;
                    h = Some(h_new);
                    c = c_new;
                }
                linear(&h.expect("seq >= 1"), &p[3], &p[4])
            }
        }
    }

    fn mse(&self, bi: usize) -> tch::Result<Tensor> {
        let y = self.forward(&self.xs[bi])?;
        y.f_sub(&self.ys[bi])?.f_square()?.f_mean(Kind::Float)
    }
}

impl Trainer for TchTrainer {
    /// Gradients fresh each step (`torch::autograd::grad`), as `backward()` after PyTorch's
    /// `zero_grad(set_to_none=True)` writes them: not kept in `.grad`, zeroed and added into.
    fn step(&mut self, bi: usize, lr: f64, want_loss: bool) -> Result<Option<f32>, BackendError> {
        let loss = self.mse(bi).map_err(err)?;
        let grads = Tensor::f_run_backward(&[&loss], &self.params, false, false).map_err(err)?;
        {
            let _guard = tch::no_grad_guard();
            for (p, g) in self.params.iter_mut().zip(&grads) {
                let step = g.f_mul_scalar(lr).map_err(err)?;
                let _ = p.f_sub_(&step).map_err(err)?;
            }
        }
        if want_loss {
            Ok(Some(f32::try_from(&loss).map_err(err)?))
        } else {
            Ok(None)
        }
    }

    fn loss(&mut self, bi: usize) -> Result<f32, BackendError> {
        let _guard = tch::no_grad_guard();
        let l = self.mse(bi).map_err(err)?;
        f32::try_from(&l).map_err(err)
    }

    fn sync(&mut self) -> Result<(), BackendError> {
        crate::sync(self.device)
    }

    /// libtorch's intra-op threads on the CPU.
    fn threads(&self) -> Option<usize> {
        (self.device == Device::Cpu).then(|| tch::get_num_threads().max(0) as usize)
    }

    fn params(&mut self) -> Result<Vec<Vec<f32>>, BackendError> {
        self.params.iter().map(download).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wattbench_core::model::{Dataset, ModelKind, Size};

    /// A step leaves no gradient in the parameters' `.grad` for the next to zero and add into.
    #[test]
    fn steps_keep_no_gradient_to_accumulate_into() {
        let model = ModelConfig::new(ModelKind::Mlp, Size::Tiny);
        let data = Dataset::generate(&model, 4, 1, 3);
        let init = model.init_params(3);
        let setup = TrainSetup {
            model: &model,
            data: &data,
            init: &init,
            device: "cpu",
        };
        let mut t = TchTrainer::new(Device::Cpu, &setup).unwrap();
        t.step(0, 0.1, false).unwrap();
        t.step(0, 0.1, true).unwrap();
        assert!(t.params.iter().all(|p| !p.grad().defined()));
    }
}
