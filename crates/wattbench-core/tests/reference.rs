//! The reference backend through the same generic check (its outputs are rounded to f32).
wattbench_core::backend_tests!(wattbench_core::reference::ReferenceBackend, "cpu");
