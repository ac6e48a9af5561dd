//! The shape of `src/`, checked: functions of the controller short enough to read, and
//! modules that import each other in one direction only.
//!
//! No two modules depend on each other, directly or through others. A module may use its own parent's items
//! (`super::Context`) and its children; every other `crate::`, `super::` or `self::`
//! path is a dependency between the two siblings under the modules' nearest common
//! parent, and those dependencies must have no cycle. Code under `#[cfg(test)]` does not
//! count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module as its path from the crate root (`["controller", "reconcile"]`).
type Module = Vec<String>;

/// Every module of `src/` (the library; `main.rs` is a crate of its own) and its code.
fn modules() -> BTreeMap<Module, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let relative = path.strip_prefix(&root).expect("under src/");
            let mut module: Module = relative
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if module == ["main"] || path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            if module.last().is_some_and(|m| m == "mod" || m == "lib") {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).expect("file readable");
            out.insert(module, code_of(&text));
        }
    }
    out
}

/// The code of a file without comments, string and char literals, and everything from
/// the first `#[cfg(test)]` on (test modules sit at the end of a file).
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    match (escaped, c) {
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => escaped = false,
                    }
                }
                out.push_str("\"\"");
            }
            _ => out.push(c),
        }
    }
    out
}

/// The paths a module's code names that start with `crate`, `super` or `self`, as module
/// paths (a `use` group `crate::{a, b::c}` gives one path per item).
fn paths(code: &str, module: &Module) -> Vec<Module> {
    let mut starts: Vec<usize> = ["crate::", "super::", "self::"]
        .iter()
        .flat_map(|prefix| code.match_indices(prefix).map(|(at, _)| at))
        .filter(|at| {
            let before = code[..*at].chars().next_back();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
        })
        .collect();
    starts.sort();
    let mut out = Vec::new();
    for at in starts {
        let rest = &code[at..];
        let (base, skip) = if let Some(after) = rest.strip_prefix("crate::") {
            (Vec::new(), rest.len() - after.len())
        } else if rest.starts_with("self::") {
            (module.clone(), "self::".len())
        } else {
            let mut base = module.clone();
            let mut skip = 0;
            while rest[skip..].starts_with("super::") {
                base.pop();
                skip += "super::".len();
            }
            (base, skip)
        };
        for tail in tails(&rest[skip..]) {
            let mut path = base.clone();
            path.extend(tail);
            out.push(path);
        }
    }
    out
}

/// The segments a path names after its `crate::`/`super::`: `a::b::C` gives `[a, b, C]`,
/// `{a, b::c}` gives `[a]` and `[b, c]`.
fn tails(rest: &str) -> Vec<Vec<String>> {
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 0;
        let mut items = Vec::new();
        let mut start = 0;
        for (at, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    items.push(&group[start..at]);
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&group[start..at]);
                    start = at + 1;
                }
                _ => {}
            }
        }
        return items.iter().flat_map(|item| tails(item.trim())).collect();
    }
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(rest.len());
    let segments: Vec<String> = rest[..end]
        .split("::")
        .take_while(|s| !s.is_empty() && *s != "self")
        .map(str::to_string)
        .collect();
    let next = &rest[end..];
    if rest[..end].ends_with("::") && next.starts_with('{') {
        return tails(next)
            .into_iter()
            .map(|tail| segments.iter().cloned().chain(tail).collect())
            .collect();
    }
    vec![segments]
}

/// The dependencies between sibling modules: for each pair of modules where one names
/// the other (neither being the other's ancestor), the two children of their nearest
/// common parent on the way to each.
fn sibling_edges() -> BTreeSet<(Module, Module)> {
    let modules = modules();
    let mut edges = BTreeSet::new();
    for (module, code) in &modules {
        for path in paths(code, module) {
            let Some(target) = (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| modules.contains_key(p))
            else {
                continue;
            };
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if common == module.len() || common == target.len() {
                continue;
            }
            edges.insert((module[..=common].to_vec(), target[..=common].to_vec()));
        }
    }
    edges
}

/// A cycle among the edges, as the modules on it, if there is one.
fn cycle(edges: &BTreeSet<(Module, Module)>) -> Option<Vec<Module>> {
    let mut next: BTreeMap<&Module, Vec<&Module>> = BTreeMap::new();
    for (from, to) in edges {
        next.entry(from).or_default().push(to);
    }
    fn visit<'a>(
        at: &'a Module,
        next: &BTreeMap<&'a Module, Vec<&'a Module>>,
        path: &mut Vec<&'a Module>,
        done: &mut BTreeSet<&'a Module>,
    ) -> Option<Vec<Module>> {
        if let Some(start) = path.iter().position(|m| *m == at) {
            return Some(path[start..].iter().map(|m| (*m).clone()).collect());
        }
        if !done.insert(at) {
            return None;
        }
        path.push(at);
        for to in next.get(at).into_iter().flatten() {
            if let Some(found) = visit(to, next, path, done) {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for from in next.keys() {
        if let Some(found) = visit(from, &next, &mut Vec::new(), &mut done) {
            return Some(found);
        }
    }
    None
}

#[test]
fn no_two_modules_import_each_other() {
    let edges = sibling_edges();
    assert!(
        edges.len() > 10,
        "the scan finds the dependencies: {edges:?}"
    );
    if let Some(found) = cycle(&edges) {
        let names: Vec<String> = found.iter().map(|m| m.join("::")).collect();
        panic!(
            "an import circle: {} -> {} (each uses the next; break it by moving what they share into a module both may use)",
            names.join(" -> "),
            names[0]
        );
    }
}

#[test]
fn the_scan_sees_groups_parents_and_nested_paths() {
    let module = vec!["controller".to_string(), "reconcile".to_string()];
    let code = "use super::{status::Outcome, Context}; use crate::{api::X, desired::{self, ownership}}; fn f() { crate::text::count(); }";
    let found: BTreeSet<String> = paths(code, &module).iter().map(|p| p.join("::")).collect();
    for expected in [
        "controller::status::Outcome",
        "controller::Context",
        "api::X",
        "desired",
        "desired::ownership",
        "text::count",
    ] {
        assert!(found.contains(expected), "{expected} in {found:?}");
    }
    let a = |s: &str| vec![s.to_string()];
    let loop_ = BTreeSet::from([(a("x"), a("y")), (a("y"), a("z")), (a("z"), a("x"))]);
    assert_eq!(cycle(&loop_).map(|c| c.len()), Some(3));
    let line = BTreeSet::from([(a("x"), a("y")), (a("y"), a("z"))]);
    assert_eq!(cycle(&line), None);
}

/// The length in lines of every function in a module's code (outside `#[cfg(test)]`),
/// from its `fn` line to its closing brace.
fn function_lengths(code: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let Some(name) = fn_name(line) else {
            continue;
        };
        let mut depth = 0i32;
        let mut opened = false;
        for (offset, line) in lines[start..].iter().enumerate() {
            for c in line.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if opened && depth == 0 {
                out.push((name.clone(), offset + 1));
                break;
            }
            if !opened && line.trim_end().ends_with(';') {
                break;
            }
        }
    }
    out
}

/// The name of the function a line declares, if it does.
fn fn_name(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "fn")?;
    let before_ok = words[..at]
        .iter()
        .all(|w| matches!(*w, "pub" | "async" | "const" | "unsafe") || w.starts_with("pub("));
    let name = words.get(at + 1)?;
    let name: String = name
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (before_ok && !name.is_empty()).then_some(name)
}

#[test]
fn controller_functions_are_short_and_converge_reads_as_its_steps() {
    let mut too_long = Vec::new();
    let mut converge = None;
    for (module, code) in modules() {
        if module.first().map(String::as_str) != Some("controller") {
            continue;
        }
        for (name, length) in function_lengths(&code) {
            if length > 80 {
                too_long.push(format!("{}::{name}: {length} lines", module.join("::")));
            }
            if module == ["controller", "reconcile"] && name == "converge" {
                converge = Some(length);
            }
        }
    }
    assert!(too_long.is_empty(), "longer than 80 lines: {too_long:?}");
    let converge = converge.expect("controller::reconcile::converge exists");
    assert!(converge <= 40, "converge has {converge} lines");
}

#[test]
fn function_lengths_count_from_fn_to_the_closing_brace() {
    let code = "pub async fn a(x: u8) -> u8 {\n    if x > 1 {\n        x\n    } else { 0 }\n}\nfn b();\nfn c() {}\n";
    assert_eq!(
        function_lengths(code),
        [("a".to_string(), 5), ("c".to_string(), 1)]
    );
}

/// The files the README's layout names under `src/`: lines `src/x.rs`, and under a line
/// `src/dir/` the indented lines `name.rs`.
fn files_in_readme_layout() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let layout = readme
        .split("\n## Layout\n")
        .nth(1)
        .expect("a Layout section");
    let block = layout.split("```").nth(1).expect("a code block in it");
    let mut dir = None;
    let mut out = BTreeSet::new();
    for line in block.lines() {
        let first = line.split_whitespace().next().unwrap_or_default();
        if line.starts_with("src/") {
            if first.ends_with('/') {
                dir = Some(first.to_string());
            } else {
                dir = None;
                out.insert(first.to_string());
            }
        } else if !line.starts_with(' ') {
            dir = None;
        } else if let Some(dir) = &dir
            && first.ends_with(".rs")
        {
            out.insert(format!("{dir}{first}"));
        }
    }
    out
}

#[test]
fn the_readme_layout_names_every_file_of_src() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = BTreeSet::new();
    let mut dirs = vec![root.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(root).expect("under the root");
                files.insert(relative.to_string_lossy().into_owned());
            }
        }
    }
    let named = files_in_readme_layout();
    let missing: Vec<&String> = files.difference(&named).collect();
    let stale: Vec<&String> = named.difference(&files).collect();
    assert!(
        missing.is_empty(),
        "src/ files the README's layout does not name: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "the README's layout names files that do not exist: {stale:?}"
    );
}
