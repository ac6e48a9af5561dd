//! Everything the project emits as YAML reads the same to a YAML 1.1 reader (kubectl,
//! Helm) as to a YAML 1.2 one: no plain scalar is one of the words YAML 1.1 turns into a
//! boolean (`yes`, `no`, `on`, `off`, `y`, `n` in their spellings) where a 1.2 reader,
//! and so the author, sees a string. `true`, `false`, `null` and `~` mean the same in
//! both and are left alone.

mod support;

use std::path::Path;
use std::process::Command;

/// The plain words YAML 1.1 resolves to a boolean and YAML 1.2 (core schema) keeps as a
/// string (yaml.org/type/bool.html, the spellings it lists).
const YAML11_ONLY_BOOLS: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
    "OFF",
];

/// Each plain scalar of the text that a YAML 1.1 reader turns into a boolean, as
/// `line N: word`. Block scalars (`|`, `>`), quoted scalars and comments are skipped; a
/// plain scalar is what stands between the flow and mapping indicators.
fn yaml11_surprises(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut block_indent: Option<usize> = None;
    for (number, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        if let Some(parent) = block_indent {
            if line.trim().is_empty() || indent > parent {
                continue;
            }
            block_indent = None;
        }
        let content = strip_comment(line);
        let trimmed = content.trim_end();
        if trimmed.ends_with('|')
            || trimmed.ends_with('>')
            || trimmed.ends_with("|-")
            || trimmed.ends_with(">-")
            || trimmed.ends_with("|+")
            || trimmed.ends_with(">+")
        {
            block_indent = Some(indent);
        }
        for token in plain_scalars(content) {
            if YAML11_ONLY_BOOLS.contains(&token.as_str()) {
                found.push(format!("line {}: {token}", number + 1));
            }
        }
    }
    found
}

/// The line without its comment (a `#` at the start or after a space, outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '#' && previous.is_whitespace() => return &line[..i],
            None => {}
        }
        previous = c;
    }
    line
}

/// The plain (unquoted) scalars of one line: keys and values, split at `: `, `- `, and
/// the flow indicators `[ ] { } ,`.
fn plain_scalars(line: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    let flush = |current: &mut String, quoted: &mut bool, tokens: &mut Vec<String>| {
        let token = current.trim();
        let token = token.strip_prefix("- ").unwrap_or(token).trim();
        if !*quoted && !token.is_empty() && token != "-" {
            tokens.push(token.to_string());
        }
        current.clear();
        *quoted = false;
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' if current.trim().is_empty() || current.trim() == "-" => {
                quoted = true;
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                }
            }
            '[' | ']' | '{' | '}' | ',' => flush(&mut current, &mut quoted, &mut tokens),
            ':' if chars.peek().is_none_or(|n| n.is_whitespace()) => {
                flush(&mut current, &mut quoted, &mut tokens)
            }
            _ => current.push(c),
        }
    }
    flush(&mut current, &mut quoted, &mut tokens);
    tokens
}

fn assert_clean(what: &str, text: &str) {
    let found = yaml11_surprises(text);
    assert!(
        found.is_empty(),
        "{what}: plain scalars a YAML 1.1 reader (kubectl, Helm) reads as booleans: {}",
        found.join(", ")
    );
}

fn yaml_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("directory reads")
        .map(|e| e.expect("entry reads").path())
        .flat_map(|p| if p.is_dir() { yaml_files(&p) } else { vec![p] })
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    files
}

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn the_check_finds_what_yaml_1_1_turns_into_booleans() {
    assert_eq!(
        yaml11_surprises("enum:\n- Strict\n- Standard\n- Off\n"),
        ["line 4: Off"]
    );
    assert_eq!(
        yaml11_surprises("network: {isolation: Off, x: [a, no]}\non: push\n"),
        ["line 1: Off", "line 1: no", "line 2: on"]
    );
    assert!(
        yaml11_surprises(
            "a: 'Off'\nb: \"no\"\nc: true\nd: null\ne: Offline\nf: |\n  no\n  off\ng: x # no\nh: http://on:80\n"
        )
        .is_empty()
    );
}

#[test]
fn crds_examples_and_fixtures_read_the_same_in_yaml_1_1() {
    for dir in [
        "crds",
        "examples",
        "tests/fixtures",
        "charts/customer-operator",
    ] {
        for file in yaml_files(&Path::new(ROOT).join(dir)) {
            let text = std::fs::read_to_string(&file).expect("file reads");
            assert_clean(&file.display().to_string(), &text);
        }
    }
}

#[test]
fn yaml_in_the_readme_reads_the_same_in_yaml_1_1() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).expect("README");
    let mut inside = false;
    let mut snippet = String::new();
    let mut snippets = 0;
    for line in readme.lines() {
        if !inside && line.trim_start().starts_with("```yaml") {
            inside = true;
            snippet.clear();
        } else if inside && line.trim_start().starts_with("```") {
            inside = false;
            snippets += 1;
            assert_clean(&format!("README.md yaml snippet {snippets}"), &snippet);
        } else if inside {
            snippet.push_str(line);
            snippet.push('\n');
        }
    }
    assert!(snippets > 0, "README.md has yaml snippets");
}

#[test]
fn render_and_crds_output_read_the_same_in_yaml_1_1() {
    for args in [
        &["render", "-f", "examples/"][..],
        &["render", "-f", "tests/fixtures/isolation.yaml"],
        &["crds"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_customer-operator"))
            .args(args)
            .current_dir(ROOT)
            .output()
            .expect("binary runs");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_clean(&args.join(" "), &String::from_utf8_lossy(&out.stdout));
    }
}

#[test]
fn the_rendered_chart_reads_the_same_in_yaml_1_1() {
    for kube_version in ["1.33.0", "1.37.0"] {
        let text = support::helm(&[
            "template",
            support::CHART,
            "--namespace",
            support::CHART_NAMESPACE,
            "--kube-version",
            kube_version,
        ]);
        assert_clean(&format!("helm template (Kubernetes {kube_version})"), &text);
    }
}
