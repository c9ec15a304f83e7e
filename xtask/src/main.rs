//! Repository checks that are not tests of behaviour.
//!
//! `cargo run -p xtask -- deps` prints the top-level module graph of the
//! gateway (`src/`), and fails when two top-level modules depend on each other
//! through any path (a cycle), or when a non-test source file is longer than
//! the limit. DESIGN.md's module direction is `http` → (`auth`, `pairing`,
//! `pool`, `webhook`, `metrics`) → (`store`, `wa`) → `domain`: a lower module
//! never names a higher one.
//!
//! A file under `src/<m>/` or `src/<m>.rs` belongs to top-level module `<m>`;
//! it depends on `<n>` when its code (comments removed) names `crate::<n>`,
//! alone or inside a `use crate::{…}` group. Test files (`tests.rs`, files
//! under a `tests/` folder, and a trailing `#[cfg(test)] mod tests { … }`)
//! are left out: tests may reach across layers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Longest non-test source file, in lines ("files that fit in a head").
const MAX_LINES: usize = 650;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("deps") => deps(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../src")
                .as_path(),
        ),
        _ => {
            eprintln!("usage: cargo run -p xtask -- deps");
            ExitCode::from(2)
        }
    }
}

/// The `deps` check; see the crate docs.
fn deps(src: &Path) -> ExitCode {
    let modules = top_level_modules(src);
    let mut edges: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    let mut long_files = Vec::new();
    for file in rust_files(src) {
        let rel = file.strip_prefix(src).unwrap_or(&file);
        let Some(top) = rel.components().next().map(|c| {
            let name = c.as_os_str().to_string_lossy();
            name.strip_suffix(".rs").unwrap_or(&name).to_owned()
        }) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let body = without_test_module(&text);
        if is_test_file(rel) {
            continue;
        }
        let lines = body.lines().count();
        if lines > MAX_LINES {
            long_files.push((rel.display().to_string(), lines));
        }
        if let Some(targets) = edges.get_mut(&top) {
            for named in crate_paths(&without_comments(body)) {
                if named != top && modules.contains(&named) {
                    targets.insert(named);
                }
            }
        }
    }

    for (module, targets) in &edges {
        let list: Vec<&str> = targets.iter().map(String::as_str).collect();
        let list = if list.is_empty() {
            "-".to_owned()
        } else {
            list.join(", ")
        };
        println!("{module} -> {list}");
    }
    let cycles = strongly_connected(&edges)
        .into_iter()
        .filter(|component| component.len() > 1)
        .collect::<Vec<_>>();
    for component in &cycles {
        let inner: Vec<String> = component
            .iter()
            .flat_map(|a| {
                edges[a]
                    .iter()
                    .filter(|b| component.contains(b))
                    .map(move |b| format!("{a}->{b}"))
            })
            .collect();
        println!("cycle: {}", inner.join(" "));
    }
    for (file, lines) in &long_files {
        println!("long file: src/{file} {lines} lines (limit {MAX_LINES})");
    }
    println!(
        "{} module cycles, {} files over {MAX_LINES} lines",
        cycles.len(),
        long_files.len()
    );
    if cycles.is_empty() && long_files.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `src/<m>.rs` and `src/<m>/`, except the crate roots.
fn top_level_modules(src: &Path) -> BTreeSet<String> {
    let mut modules = BTreeSet::new();
    for entry in std::fs::read_dir(src).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() {
            modules.insert(name);
        } else if let Some(stem) = name.strip_suffix(".rs")
            && stem != "lib"
            && stem != "main"
        {
            modules.insert(stem.to_owned());
        }
    }
    modules
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// `tests.rs` anywhere, or any file under a `tests/` folder.
fn is_test_file(rel: &Path) -> bool {
    rel.file_name().is_some_and(|n| n == "tests.rs")
        || rel.components().any(|c| c.as_os_str() == "tests")
}

/// The text before a trailing `#[cfg(test)] mod tests {`.
fn without_test_module(text: &str) -> &str {
    let mut offset = 0;
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && let Some(next) = lines.peek()
            && next.trim().starts_with("mod tests")
            && next.trim().ends_with('{')
        {
            return &text[..offset];
        }
        offset += line.len();
    }
    text
}

/// `text` with `//` comments removed (doc links are not dependencies).
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| line.find("//").map_or(line, |at| &line[..at]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every top-level module named as `crate::<name>` or inside `crate::{…}`.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                if let Some(first) = part.trim().split("::").next() {
                    named.insert(identifier(first).to_owned());
                }
            }
        } else {
            named.insert(identifier(rest).to_owned());
        }
    }
    named.remove("");
    named
}

/// The leading `[a-z0-9_]` identifier of `text`.
fn identifier(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// Tarjan's strongly connected components of `edges`.
fn strongly_connected(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        components: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in &self.edges[v] {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                component.sort();
                self.components.push(component);
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for v in edges.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.components
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_paths_are_found_alone_and_in_groups_but_not_in_comments() {
        let code = without_comments(
            "use crate::store::Store;\nuse crate::{domain::now_ms, pb};\n// see crate::http\nlet x = crate::wa::is_linked(s, c);",
        );
        let named: Vec<String> = crate_paths(&code).into_iter().collect();
        assert_eq!(named, ["domain", "pb", "store", "wa"]);
    }

    #[test]
    fn a_two_way_dependency_is_one_component() {
        let edges: BTreeMap<String, BTreeSet<String>> = [
            ("http", &["pool"][..]),
            ("pool", &["store"]),
            ("store", &["pool"]),
        ]
        .into_iter()
        .map(|(m, to)| (m.to_owned(), to.iter().map(|t| (*t).to_owned()).collect()))
        .collect();
        let cycles: Vec<Vec<String>> = strongly_connected(&edges)
            .into_iter()
            .filter(|c| c.len() > 1)
            .collect();
        assert_eq!(cycles, [vec!["pool".to_owned(), "store".to_owned()]]);
    }

    #[test]
    fn the_trailing_test_module_is_cut() {
        let text = "fn a() {}\n#[cfg(test)]\nmod tests {\n    use crate::http;\n}\n";
        assert_eq!(without_test_module(text), "fn a() {}\n");
        assert_eq!(without_test_module("fn a() {}\n"), "fn a() {}\n");
    }
}
