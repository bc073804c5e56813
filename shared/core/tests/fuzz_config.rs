//! Fuzz-style property of the config loader on stable Rust: the example config
//! (`examples/hrsync.toml`) mutated line by line and byte by byte, and arbitrary text,
//! through `Config::parse`: never a panic, and an error message of bounded length.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use hrsync_core::Config;
use proptest::prelude::*;

const EXAMPLE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/hrsync.toml"
));

/// One edit of the example: a line dropped, doubled or moved; a byte replaced or inserted;
/// a line's text repeated (long values, deep arrays).
#[derive(Debug, Clone)]
enum Edit {
    DropLine(usize),
    DoubleLine(usize),
    SwapLines(usize, usize),
    Replace(usize, char),
    Insert(usize, char),
    RepeatLine(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let character = prop_oneof![
        any::<char>(),
        proptest::sample::select("[]{}\"'=.,#\n\\0123456789-:+ ".chars().collect::<Vec<_>>()),
    ];
    prop_oneof![
        any::<usize>().prop_map(Edit::DropLine),
        any::<usize>().prop_map(Edit::DoubleLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        (any::<usize>(), character.clone()).prop_map(|(at, c)| Edit::Replace(at, c)),
        (any::<usize>(), character).prop_map(|(at, c)| Edit::Insert(at, c)),
        (any::<usize>(), 1usize..200).prop_map(|(at, times)| Edit::RepeatLine(at, times)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for edit in edits {
        let count = lines.len().max(1);
        match edit {
            Edit::DropLine(i) if !lines.is_empty() => {
                lines.remove(i % count);
            }
            Edit::DoubleLine(i) if !lines.is_empty() => {
                let line = lines[i % count].clone();
                lines.insert(i % count, line);
            }
            Edit::SwapLines(a, b) if !lines.is_empty() => lines.swap(a % count, b % count),
            Edit::Replace(i, c) | Edit::Insert(i, c) if !lines.is_empty() => {
                let line = &mut lines[i % count];
                let mut chars: Vec<char> = line.chars().collect();
                let at = if chars.is_empty() { 0 } else { i % chars.len() };
                match edit {
                    Edit::Replace(..) if !chars.is_empty() => chars[at] = *c,
                    _ => chars.insert(at, *c),
                }
                *line = chars.into_iter().collect();
            }
            Edit::RepeatLine(i, times) if !lines.is_empty() => {
                let line = &mut lines[i % count];
                *line = line.repeat(*times);
            }
            _ => {}
        }
    }
    lines.join("\n")
}

fn config() -> ProptestConfig {
    let mut config = ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = proptest::test_runner::RngSeed::Fixed(20_261_207);
    }
    config
}

/// An error names the file, the key and what is wrong; it may quote the line, never more
/// than a few lines' worth of the input.
fn check(text: &str) -> Result<(), TestCaseError> {
    if let Err(error) = Config::parse(text, "hrsync.toml") {
        let message = error.to_string();
        let longest_line = text.lines().map(str::len).max().unwrap_or(0);
        prop_assert!(
            message.len() <= 4 * longest_line + 4_096,
            "an error of {} bytes for lines of at most {longest_line}",
            message.len()
        );
    }
    Ok(())
}

#[test]
fn the_example_config_loads() {
    Config::parse(EXAMPLE, "hrsync.toml").expect("the example config is valid");
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_mutated_example_never_panics(edits in proptest::collection::vec(edit(), 1..8)) {
        check(&apply(EXAMPLE, &edits))?;
    }

    #[test]
    fn arbitrary_text_never_panics(text in "(?s).{0,400}") {
        check(&text)?;
    }
}
