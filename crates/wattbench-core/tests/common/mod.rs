//! What the property-test files share.
use proptest::prelude::ProptestConfig;

/// `cases` cases a property, with no failure files written into the tree.
pub fn cfg(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}
