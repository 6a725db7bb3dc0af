//! Host tensors and seeded input generation.
//!
//! Inputs are drawn from a seeded ChaCha stream (never zeros), then rounded to the case's
//! dtype, so the reference and every backend see bit-identical values.
use crate::workload::{Case, DType, Params, TensorSpec};
use half::{bf16, f16};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A row-major f32 tensor on the host whose values are exactly representable in `dtype`.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// Name from the case's [`TensorSpec`].
    pub name: &'static str,
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// Values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// Values widened to f64.
    pub fn to_f64(&self) -> Vec<f64> {
        self.data.iter().map(|&v| v as f64).collect()
    }
}

/// Round an f32 to the nearest value of `dtype`.
pub fn round_to(v: f32, dtype: DType) -> f32 {
    match dtype {
        DType::F32 => v,
        DType::F16 => f16::from_f32(v).to_f32(),
        DType::Bf16 => bf16::from_f32(v).to_f32(),
    }
}

/// Generate the inputs of `case` from `seed`, rounded to its dtype: the op's inputs, and in
/// training mode the upstream gradient `dy`. Each tensor draws from its own stream, uniform in
/// its spec's `±scale`.
pub fn generate_case_inputs(case: &Case, seed: u64) -> Vec<HostTensor> {
    generate(case.input_specs(), case.dtype, seed)
}

/// Generate the forward inputs of `params` (no `dy`), rounded to `dtype`.
pub fn generate_inputs(params: &Params, dtype: DType, seed: u64) -> Vec<HostTensor> {
    generate(params.inputs(), dtype, seed)
}

fn generate(specs: Vec<TensorSpec>, dtype: DType, seed: u64) -> Vec<HostTensor> {
    specs
        .into_iter()
        .enumerate()
        .map(|(i, spec)| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((i as u64 + 1) << 56));
            let data = (0..spec.numel())
                .map(|_| round_to(rng.random_range(-1.0f32..1.0) * spec.scale, dtype))
                .collect();
            HostTensor {
                name: spec.name,
                shape: spec.shape,
                data,
            }
        })
        .collect()
}

/// Relative L2 error `‖out − ref‖ / ‖ref‖`; NaN or infinity anywhere gives +inf.
pub fn rel_l2_error(out: &[f32], reference: &[f64]) -> f64 {
    if out.len() != reference.len() {
        return f64::INFINITY;
    }
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (&o, &r) in out.iter().zip(reference) {
        let o = o as f64;
        if !o.is_finite() {
            return f64::INFINITY;
        }
        num += (o - r) * (o - r);
        den += r * r;
    }
    if den == 0.0 {
        return if num == 0.0 { 0.0 } else { f64::INFINITY };
    }
    (num / den).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::GemmParams;

    #[test]
    fn inputs_are_seeded_nonzero_and_representable() {
        let p = Params::Gemm(GemmParams {
            m: 8,
            n: 8,
            k: 8,
            trans_a: false,
            trans_b: false,
        });
        let a = generate_inputs(&p, DType::Bf16, 7);
        let b = generate_inputs(&p, DType::Bf16, 7);
        let c = generate_inputs(&p, DType::Bf16, 8);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a[0]
            .data
            .iter()
            .all(|&v| v != 0.0 && round_to(v, DType::Bf16) == v));
        assert_ne!(a[0].data, a[1].data);
    }

    #[test]
    fn rel_l2_flags_error_and_nan() {
        assert_eq!(rel_l2_error(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        let e = rel_l2_error(&[1.0, 2.1], &[1.0, 2.0]);
        assert!((e - 0.1 / 5f64.sqrt()).abs() < 1e-6);
        assert!(rel_l2_error(&[f32::NAN, 2.0], &[1.0, 2.0]).is_infinite());
        assert!(rel_l2_error(&[1.0], &[1.0, 2.0]).is_infinite());
    }
}
