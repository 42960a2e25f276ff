//! One direction through the crate: every `crate::…` path in `src/` names a module that the layer
//! table of docs/architecture.md ("Layers") lets its module import, and the table itself only
//! lets a module import the ones listed above it, so there is no cycle and no upward import.
//!
//! The table is the documentation; this test keeps it true. Comments and string literals are
//! not code (doc links do not count), `#[cfg(test)]` code counts like any other, and a path
//! through a root re-export (`crate::Composite`) counts as an import of the module it comes
//! from (read from `src/lib.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One row of the layer table: a module and what it may import.
#[derive(Debug)]
struct Row {
    module: String,
    may_import: BTreeSet<String>,
}

/// The rows of the table under the heading `## Layers`, bottom first: `| `module` | what it
/// holds | `a`, `b` |` (`—` for nothing). Errors name what is malformed.
fn parse_table(markdown: &str) -> Result<Vec<Row>, String> {
    let section = format!("\n{markdown}");
    let section = section
        .split("\n## ")
        .find(|s| s.starts_with("Layers\n"))
        .ok_or("docs/architecture.md has no '## Layers' section")?;
    let mut rows = Vec::new();
    for line in section.lines().filter(|l| l.starts_with('|')) {
        // Cells split at `|`, not at an escaped `\|` inside one.
        let inner = line.trim().trim_matches('|').replace("\\|", "\u{1}");
        let cells: Vec<&str> = inner.split('|').collect();
        if cells.len() != 3 {
            return Err(format!(
                "layer table row with {} cells, not 3: {line}",
                cells.len()
            ));
        }
        let names = |cell: &str| -> BTreeSet<String> {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        };
        let module = names(cells[0]);
        // The header and the separator row name no module.
        let Some(module) = module.into_iter().next() else {
            continue;
        };
        rows.push(Row {
            module,
            may_import: names(cells[2]),
        });
    }
    if rows.is_empty() {
        return Err("the '## Layers' section has no table rows".into());
    }
    Ok(rows)
}

/// The code of a Rust file without its comments and the contents of its string and char
/// literals (each replaced by a space, so line numbers stay).
fn code_only(source: &str) -> String {
    let c: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let keep_lines = |s: &[char], out: &mut String| {
        for &ch in s {
            if ch == '\n' {
                out.push('\n');
            }
        }
    };
    while i < c.len() {
        match c[i] {
            '/' if c.get(i + 1) == Some(&'/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if c.get(i + 1) == Some(&'*') => {
                let (start, mut depth) = (i, 0usize);
                while i < c.len() {
                    if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                keep_lines(&c[start..i.min(c.len())], &mut out);
                out.push(' ');
            }
            'r' if matches!(c.get(i + 1), Some('"' | '#'))
                && !c[..i]
                    .last()
                    .is_some_and(|p| p.is_alphanumeric() || *p == '_') =>
            {
                let start = i;
                let mut j = i + 1;
                let mut hashes = 0;
                while c.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if c.get(j) != Some(&'"') {
                    out.push(c[i]);
                    i += 1;
                    continue;
                }
                j += 1;
                loop {
                    if j >= c.len() {
                        break;
                    }
                    if c[j] == '"' && (0..hashes).all(|h| c.get(j + 1 + h) == Some(&'#')) {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                i = j;
                keep_lines(&c[start..i.min(c.len())], &mut out);
                out.push(' ');
            }
            '"' => {
                let start = i;
                i += 1;
                while i < c.len() && c[i] != '"' {
                    i += if c[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                keep_lines(&c[start..i.min(c.len())], &mut out);
                out.push(' ');
            }
            // A char literal ('x', '\n', '\''), not a lifetime ('a).
            '\'' if c.get(i + 2) == Some(&'\'') || c.get(i + 1) == Some(&'\\') => {
                i += 1;
                while i < c.len() && c[i] != '\'' {
                    i += if c[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                out.push(' ');
            }
            ch => {
                out.push(ch);
                i += 1;
            }
        }
    }
    out
}

/// Every first segment after `crate::` in `code` with its line, `crate::{a::x, b}` giving `a`
/// and `b`.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        // Not the tail of another path (`$crate::`, `my_crate::`).
        if code[..at]
            .chars()
            .last()
            .is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '$')
        {
            continue;
        }
        let line = code[..at].matches('\n').count() + 1;
        let rest = code[at + "crate::".len()..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group.
            let (mut depth, mut item_start, mut items) = (0usize, 0usize, Vec::new());
            for (k, ch) in group.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        items.push(&group[item_start..k]);
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        items.push(&group[item_start..k]);
                        item_start = k + 1;
                    }
                    _ => {}
                }
            }
            found.extend(
                items
                    .into_iter()
                    .map(ident)
                    .filter(|s| !s.is_empty())
                    .map(|s| (line, s)),
            );
        } else {
            found.push((line, ident(rest)));
        }
    }
    found
}

/// The names `src/lib.rs` re-exports at the root, each with the module it comes from
/// (`pub use explain::{Explainer, …};` → `Explainer` → `explain`).
fn root_exports(lib_rs: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let code = code_only(lib_rs);
    for stmt in code.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        let names = names.trim().trim_start_matches('{').trim_end_matches('}');
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            map.insert(name.to_string(), module.trim().to_string());
        }
    }
    map
}

/// The top-level module a file of `src/` belongs to (`kernels/conv.rs` → `kernels`), or `None`
/// for the crate root and the binaries.
fn module_of(relative: &str) -> Option<String> {
    let first = relative.split('/').next()?;
    match first {
        "lib.rs" | "bin" => None,
        f => Some(f.trim_end_matches(".rs").to_string()),
    }
}

/// The table's own rules (every module listed, imports only from rows above, no unknown names)
/// and every file's imports against it. `files` are `(path relative to src/, source)`.
fn violations(
    table: &[Row],
    files: &[(String, String)],
    exports: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let position: BTreeMap<&str, usize> = table
        .iter()
        .enumerate()
        .map(|(i, r)| (r.module.as_str(), i))
        .collect();
    for (i, row) in table.iter().enumerate() {
        for m in &row.may_import {
            match position.get(m.as_str()) {
                None => problems.push(format!(
                    "layer table: `{}` may import `{m}`, which has no row",
                    row.module
                )),
                Some(&j) if j >= i => problems.push(format!(
                    "layer table: `{}` may import `{m}`, which is not below it (rows are bottom first)",
                    row.module
                )),
                Some(_) => {}
            }
        }
    }
    let modules: BTreeSet<String> = files.iter().filter_map(|(p, _)| module_of(p)).collect();
    for m in &modules {
        if !position.contains_key(m.as_str()) {
            problems.push(format!("layer table: src/{m} has no row"));
        }
    }
    let file_of = |m: &str| {
        files
            .iter()
            .map(|(p, _)| p)
            .find(|p| *p == &format!("{m}.rs") || *p == &format!("{m}/mod.rs"))
            .map_or_else(|| format!("src/{m}"), |p| format!("src/{p}"))
    };
    // module → imported module → first place (file, line).
    let mut edges: BTreeMap<String, BTreeMap<String, (String, usize)>> = BTreeMap::new();
    for (path, source) in files {
        let Some(from) = module_of(path) else {
            continue;
        };
        for (line, name) in crate_paths(&code_only(source)) {
            let to = if modules.contains(&name) {
                name
            } else if let Some(m) = exports.get(&name) {
                m.clone()
            } else {
                continue; // a macro or an item of the root itself
            };
            if to == from {
                continue;
            }
            edges
                .entry(from.clone())
                .or_default()
                .entry(to)
                .or_insert_with(|| (format!("src/{path}"), line));
        }
    }
    for (from, tos) in &edges {
        let allowed = table.iter().find(|r| &r.module == from);
        for (to, (file, line)) in tos {
            if !allowed.is_some_and(|r| r.may_import.contains(to)) {
                let direction = match (position.get(from.as_str()), position.get(to.as_str())) {
                    (Some(a), Some(b)) if b > a => "an upward import",
                    _ => "an import the table does not list",
                };
                problems.push(format!(
                    "{file}:{line} imports `{to}` ({}): {direction}; docs/architecture.md lets `{from}` import {}",
                    file_of(to),
                    allowed.map_or("nothing (no row)".into(), |r| {
                        r.may_import
                            .iter()
                            .map(|m| format!("`{m}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                ));
            }
        }
    }
    // Cycles among the actual imports, named file by file.
    let mut reported = BTreeSet::new();
    for start in edges.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        while let Some((at, path)) = stack.pop() {
            for to in edges.get(&at).into_iter().flat_map(|t| t.keys()) {
                if to == start {
                    let mut cycle = path.clone();
                    let min = cycle.iter().min().cloned().unwrap_or_default();
                    let r = cycle.iter().position(|m| *m == min).unwrap_or(0);
                    cycle.rotate_left(r);
                    if reported.insert(cycle.clone()) {
                        let steps: Vec<String> = cycle
                            .iter()
                            .zip(cycle.iter().cycle().skip(1))
                            .map(|(a, b)| {
                                let (file, line) = &edges[a][b];
                                format!("{file}:{line} → `{b}`")
                            })
                            .collect();
                        problems.push(format!("import cycle: {}", steps.join(", ")));
                    }
                } else if !path.contains(to) && to > start {
                    let mut p = path.clone();
                    p.push(to.clone());
                    stack.push((to.clone(), p));
                }
            }
        }
    }
    problems
}

fn rust_files(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).expect("below src/");
            let relative = relative.to_string_lossy().replace('\\', "/");
            let source = std::fs::read_to_string(&path).expect("a readable source file");
            out.push((relative, source));
        }
    }
}

#[test]
fn every_import_in_src_follows_the_layer_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let table = parse_table(&doc).unwrap();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &root.join("src"), &mut files);
    files.sort();
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let mut problems = violations(&table, &files, &root_exports(&lib));
    problems.extend(doc_lines_disagreeing(&table, &files));
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Each module's opening doc comment says what it may import in a `//! May import: …` paragraph
/// (`nothing of klrp` for none), the same set as its row of the table.
fn doc_lines_disagreeing(table: &[Row], files: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    for row in table {
        let m = &row.module;
        let Some((path, source)) = files
            .iter()
            .find(|(p, _)| *p == format!("{m}.rs") || *p == format!("{m}/mod.rs"))
        else {
            continue;
        };
        let docs: Vec<&str> = source
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .map(|l| l.trim_start_matches("//!").trim())
            .collect();
        let paragraph: Vec<&str> = docs
            .iter()
            .skip_while(|l| !l.starts_with("May import:"))
            .take_while(|l| !l.is_empty())
            .copied()
            .collect();
        if paragraph.is_empty() {
            problems.push(format!(
                "src/{path}: its opening doc comment has no 'May import:' paragraph"
            ));
            continue;
        }
        let said: BTreeSet<String> = paragraph
            .join(" ")
            .split(" (docs/architecture.md")
            .next()
            .unwrap_or_default()
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        if said != row.may_import {
            problems.push(format!(
                "src/{path}: 'May import:' says {said:?}, the layer table says {:?}",
                row.may_import
            ));
        }
    }
    problems
}

mod checker {
    use super::*;

    const TABLE: &str = "# Architecture\n\n## Layers\n\n| module | holds | may import |\n|---|---|---|\n\
        | `error` | errors | — |\n| `shares` | shares | `error` |\n\
        | `kernels` | loops | `error`, `shares` |\n| `layers` | layers | `error`, `kernels`, `shares` |\n\n## Next\n";

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(p, s)| (p.to_string(), s.to_string()))
            .collect()
    }

    fn check(list: &[(&str, &str)]) -> Vec<String> {
        let exports = root_exports("pub use layers::{Dense, Layer};\npub use error::Error;");
        violations(&parse_table(TABLE).unwrap(), &files(list), &exports)
    }

    #[test]
    fn a_tree_that_follows_the_table_passes() {
        let ok = check(&[
            ("error.rs", ""),
            ("shares.rs", "use crate::error::Error;"),
            (
                "kernels/mod.rs",
                "use crate::{error::Error, shares::Shares};\nmod conv;",
            ),
            ("kernels/conv.rs", "use super::x; use crate::kernels::y;"),
            (
                "layers/mod.rs",
                "use crate::kernels; use crate::Error as E;",
            ),
            ("lib.rs", "pub mod layers; use crate::layers::Dense;"),
        ]);
        assert!(ok.is_empty(), "{ok:?}");
    }

    #[test]
    fn an_upward_import_names_both_files() {
        let p = check(&[
            ("error.rs", ""),
            ("shares.rs", ""),
            ("kernels/mod.rs", ""),
            ("kernels/conv.rs", "\n\nfn f(l: &crate::layers::Dense) {}"),
            ("layers/mod.rs", ""),
        ]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with(
                "src/kernels/conv.rs:3 imports `layers` (src/layers/mod.rs): an upward import"
            ),
            "{}",
            p[0]
        );
    }

    #[test]
    fn a_cycle_is_named_file_by_file_and_root_re_exports_count() {
        let p = check(&[
            ("error.rs", "use crate::Dense;"),
            ("shares.rs", ""),
            ("kernels.rs", ""),
            ("layers.rs", "use crate::error::Error;"),
        ]);
        assert!(
            p.iter().any(|m| m
                .starts_with("src/error.rs:1 imports `layers` (src/layers.rs): an upward import")),
            "{p:?}"
        );
        assert!(
            p.contains(
                &"import cycle: src/error.rs:1 → `layers`, src/layers.rs:1 → `error`".to_string()
            ),
            "{p:?}"
        );
    }

    #[test]
    fn comments_strings_and_other_crates_are_not_imports() {
        let p = check(&[
            (
                "error.rs",
                "//! [`Layer`](crate::layers::Layer)\n/* crate::layers /* nested */ crate::kernels */\n\
                fn f() { let s = \"crate::layers\"; let r = r#\"crate::layers\"#; let c = '\"'; }\n\
                fn g<'a>(x: &'a str) -> &'a str { x } // crate::layers\nmacro_rules! m { () => { $crate::layers } }\n\
                use other_crate::layers;",
            ),
            ("shares.rs", ""),
            ("kernels.rs", ""),
            ("layers.rs", ""),
        ]);
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn the_table_may_only_point_down_and_must_cover_every_module() {
        let bad = "## Layers\n| module | holds | may import |\n|---|---|---|\n| `error` | e | `shares` |\n| `shares` | s | `error`, `nowhere` |\n";
        let p = violations(
            &parse_table(bad).unwrap(),
            &files(&[("error.rs", ""), ("shares.rs", ""), ("viz.rs", "")]),
            &BTreeMap::new(),
        );
        assert!(
            p.iter()
                .any(|m| m.contains("`error` may import `shares`, which is not below it")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("`shares` may import `nowhere`, which has no row")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|m| m == "layer table: src/viz has no row"),
            "{p:?}"
        );
        assert!(parse_table("# no such section").is_err());
    }
}
