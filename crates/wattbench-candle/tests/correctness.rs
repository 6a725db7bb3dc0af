//! candle on the CPU against the f64 reference: every op and mode, and (with the `train`
//! feature) every model's trainer against the f64 host model.
wattbench_core::backend_tests!(wattbench_candle::CandleBackend, "cpu");

#[cfg(feature = "train")]
mod trainer {
    wattbench_core::trainer_tests!(wattbench_candle::CandleBackend, "cpu");
}
