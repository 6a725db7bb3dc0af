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

/// How far an output is from its reference, relative to the reference: in L2, and at its
/// worst value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RelErrors {
    /// `‖out − ref‖₂ / ‖ref‖₂`.
    pub l2: f64,
    /// `max |out − ref| / rms(ref)` divided by the noise allowance `√(2 ln 2N) + 3` (how far
    /// the largest of N errors spread like noise strays from their RMS, with margin): about
    /// [`l2`](Self::l2) or less for errors spread over the values, far more for an error
    /// confined to a few of them (one wrong row, which L2 dilutes).
    pub max: f64,
}

/// `√(2 ln 2N) + 3`: the largest of N Gaussian errors is about `√(2 ln N)` times their RMS;
/// the 3 is margin for tails heavier than Gaussian.
fn noise_allowance(n: usize) -> f64 {
    (2.0 * (2.0 * n.max(1) as f64).ln()).sqrt() + 3.0
}

/// Both relative errors of `out` against `reference` in one pass: 0 when both are all zeros,
/// infinite for a non-finite output value or a length mismatch.
pub fn rel_errors(out: &[f32], reference: &[f64]) -> RelErrors {
    let inf = RelErrors {
        l2: f64::INFINITY,
        max: f64::INFINITY,
    };
    if out.len() != reference.len() {
        return inf;
    }
    let (mut sq, mut ref_sq, mut worst) = (0.0f64, 0.0f64, 0.0f64);
    for (&o, &r) in out.iter().zip(reference) {
        let o = o as f64;
        if !o.is_finite() {
            return inf;
        }
        sq += (o - r) * (o - r);
        ref_sq += r * r;
        worst = worst.max((o - r).abs());
    }
    let ratio = |num: f64, den: f64| match (num == 0.0, den == 0.0) {
        (true, _) => 0.0,
        (false, true) => f64::INFINITY,
        (false, false) => num / den,
    };
    let n = reference.len().max(1);
    let rms = (ref_sq / n as f64).sqrt();
    RelErrors {
        l2: ratio(sq, ref_sq).sqrt(),
        max: ratio(worst, rms) / noise_allowance(n),
    }
}

/// Relative L2 error `‖out − ref‖ / ‖ref‖`; NaN or infinity anywhere gives +inf.
pub fn rel_l2_error(out: &[f32], reference: &[f64]) -> f64 {
    rel_errors(out, reference).l2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::GemmParams;

    #[test]
    fn one_wrong_row_is_diluted_in_l2_but_not_in_the_max_error() {
        // A GEMM-like output: 1000 rows of 8 zero-mean values; one row left at 0.
        let mut state = 7u64;
        let want: Vec<f64> = (0..8000)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
            })
            .collect();
        let mut out: Vec<f32> = want.iter().map(|&v| v as f32).collect();
        out[800..808].iter_mut().for_each(|v| *v = 0.0);
        let e = rel_errors(&out, &want);
        assert!(e.l2 < 0.04, "under a 4e-2 L2 tolerance: {e:?}");
        assert!(e.max > 0.08, "beyond an 8e-2 tolerance: {e:?}");
        // Errors spread like noise over every value: the max measure stays near L2.
        let noisy: Vec<f32> = want
            .iter()
            .enumerate()
            .map(|(i, &v)| (v * (1.0 + 0.01 * ((i * 7919 % 13) as f64 - 6.0) / 6.0)) as f32)
            .collect();
        let e = rel_errors(&noisy, &want);
        assert!(e.max <= e.l2 * 1.5, "{e:?}");
        assert_eq!(rel_errors(&[0.0], &[0.0]).max, 0.0);
        assert_eq!(rel_errors(&[f32::NAN], &[1.0]).max, f64::INFINITY);
        assert_eq!(rel_errors(&[1.0], &[0.0]).l2, f64::INFINITY);
    }

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
