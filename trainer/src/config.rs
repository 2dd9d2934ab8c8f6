//! Training settings: the committed TOML file, then command-line overrides, then validation.

use std::path::Path;

use anyhow::Context;
use shared::TrainingSettings;

/// Reads settings from a TOML file whose fields are those of [`TrainingSettings`]; unknown
/// fields are errors, so a typo cannot silently fall back to a default.
pub fn load(path: &Path) -> anyhow::Result<TrainingSettings> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("invalid configuration {}", path.display()))
}

/// Parses and validates settings from TOML text.
pub fn parse(text: &str) -> anyhow::Result<TrainingSettings> {
    let settings: TrainingSettings = toml::from_str(text)?;
    settings.validate().map_err(anyhow::Error::msg)?;
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMITTED: &str = include_str!("../config.toml");

    #[test]
    fn committed_config_is_valid() {
        let settings = parse(COMMITTED).expect("committed config parses");
        assert_eq!(settings.architecture, shared::Architecture::Cnn);
        assert_eq!(settings.dataset, "mnist");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let text = COMMITTED.replace("epochs =", "epohcs =");
        let err = parse(&text).expect_err("typo must fail");
        assert!(format!("{err:#}").contains("epohcs"), "{err:#}");
    }

    #[test]
    fn impossible_values_are_refused() {
        for (from, to) in [("dropout = 0.", "dropout = 1."), ("batch_size = ", "batch_size = 0#")] {
            let text = COMMITTED.replacen(from, to, 1);
            assert!(parse(&text).is_err(), "{to} accepted");
        }
        let text = COMMITTED.replacen("learning_rate = ", "learning_rate = -", 1);
        assert!(
            format!("{:#}", parse(&text).expect_err("negative rate")).contains("learning_rate")
        );
    }
}
