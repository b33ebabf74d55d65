//! Keeps the shipped example config honest: `config/monitor.toml` must
//! parse to exactly `Config::default()`, must set every key the config has
//! (so a new key cannot be left out of it), and a misspelt key in it must be
//! refused by name rather than silently ignored.

use monitor_core::Config;

const EXAMPLE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/config/monitor.toml"));

/// The keys `Config` serializes, in its field order.
fn config_keys() -> Vec<String> {
    let text = toml::to_string(&Config::default()).expect("the default config serializes");
    let table: toml::Table = text.parse().expect("serialized config is TOML");
    table.keys().cloned().collect()
}

#[test]
fn example_parses_to_the_defaults() {
    let config: Config = toml::from_str(EXAMPLE).expect("config/monitor.toml parses");
    assert_eq!(config, Config::default());
    config.validate().expect("the example is valid");
}

#[test]
fn example_sets_every_key() {
    // Parsed, not searched as text: a key only named in a comment does not count.
    let example: toml::Table = EXAMPLE.parse().expect("config/monitor.toml is TOML");
    let keys = config_keys();
    assert!(!keys.is_empty(), "Config serializes to some keys");
    let missing: Vec<&String> = keys
        .iter()
        .filter(|key| !example.contains_key(*key))
        .collect();
    assert!(
        missing.is_empty(),
        "config/monitor.toml lacks {missing:?}; add each with its default and a comment"
    );
}

#[test]
fn a_misspelt_key_is_refused_by_name() {
    for key in config_keys() {
        let misspelt = format!("{key}{}", &key[key.len() - 1..]);
        let prefix = format!("{key} =");
        let mut found = 0;
        let copy: String = EXAMPLE
            .lines()
            .map(|line| match line.strip_prefix(&prefix) {
                Some(rest) => {
                    found += 1;
                    format!("{misspelt} ={rest}\n")
                }
                None => format!("{line}\n"),
            })
            .collect();
        assert_eq!(
            found, 1,
            "`{key} = ...` appears once at the start of a line"
        );
        let error = toml::from_str::<Config>(&copy)
            .expect_err(&format!("`{misspelt}` instead of `{key}` is refused"));
        assert!(
            error.to_string().contains(&format!("`{misspelt}`")),
            "the error names `{misspelt}`: {error}"
        );
    }
}
