//! The library is layered one way (README, "Repository"): among the
//! top-level modules of `src/`, no import points from a lower layer to a
//! higher one and no module imports one that imports it.
//!
//! An import is a `crate::` or `super::` path in code (comments and string
//! literals are blanked first; `#[cfg(test)]` code and `tests.rs` files
//! count too), resolved to the top-level module it names; in `src/cli/`,
//! the binary, `lza::` paths name the library's modules.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, bottom up, each with its top-level modules of `src/`
/// (`lib.rs`, the crate root, declares them and is in none). A module may
/// import modules of its own layer and of those before it. The README's
/// table says the same (checked by `readme_table_matches`).
const LAYERS: &[(&str, &[&str])] = &[
    (
        "below all",
        &["mem", "pipeline", "progress", "names", "cleanup"],
    ),
    ("format", &["format", "error", "member"]),
    ("container", &["reader", "index"]),
    ("codecs", &["codec", "cm", "lm", "cmlm", "models"]),
    ("coding plan", &["plan"]),
    ("archive I/O", &["create", "extract", "select", "symlinks"]),
    ("test support", &["testutil"]),
    ("command line", &["cli"]),
];

/// The module of the binary, whose `crate::` is not the library's.
const BINARY: &str = "cli";

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&module))
}

/// One import: the module it is in, the top-level module it names, and
/// where (file and line).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Import {
    from: String,
    to: String,
    at: String,
}

/// `src` with comments, string and char literals replaced by spaces
/// (newlines kept, so line numbers stay).
fn blank_non_code(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        if c[i] == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if c[i] == 'r'
            && (i == 0 || !ident(c[i - 1]) || (c[i - 1] == 'b' && (i < 2 || !ident(c[i - 2]))))
            && matches!(next, Some('"' | '#'))
        {
            // A raw string r"..." or r#"..."# (or a raw identifier r#name).
            let mut j = i + 1;
            while c.get(j) == Some(&'#') {
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                out.push(c[i]);
                i += 1;
                continue;
            }
            let hashes = j - i - 1;
            let mut k = j + 1;
            while k < c.len() && !(c[k] == '"' && (1..=hashes).all(|h| c.get(k + h) == Some(&'#')))
            {
                k += 1;
            }
            let end = (k + 1 + hashes).min(c.len());
            for &ch in &c[i..end] {
                blank(&mut out, ch);
            }
            i = end;
        } else if c[i] == '"' {
            blank(&mut out, c[i]);
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    blank(&mut out, c[i]);
                    i += 1;
                }
                if i < c.len() {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
            if i < c.len() {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '\'' && next == Some('\\') {
            // An escaped char literal: '\n', '\'', '\u{..}'.
            let mut k = i + 3;
            while k < c.len() && c[k] != '\'' {
                k += 1;
            }
            let end = (k + 1).min(c.len());
            for &ch in &c[i..end] {
                blank(&mut out, ch);
            }
            i = end;
        } else if c[i] == '\'' && c.get(i + 2) == Some(&'\'') {
            out.push_str("   ");
            i += 3;
        } else {
            // Code, or a lifetime's quote.
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Path,
    Punct(char),
}

/// Identifiers, `::` and single punctuation of blanked code, with lines.
fn tokens(code: &str) -> Vec<(Token, usize)> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push((Token::Ident(c[start..i].iter().collect()), line));
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push((Token::Path, line));
            i += 2;
        } else {
            out.push((Token::Punct(ch), line));
            i += 1;
        }
    }
    out
}

/// The first names of the paths at `t[at..]`: one name, or each item of a
/// `{...}` group.
fn first_names(t: &[(Token, usize)], at: usize) -> Vec<String> {
    match t.get(at) {
        Some((Token::Ident(name), _)) => vec![name.clone()],
        Some((Token::Punct('{'), _)) => {
            let mut names = Vec::new();
            let mut depth = 0;
            let mut item_start = true;
            for (tok, _) in &t[at..] {
                match tok {
                    Token::Punct('{') => {
                        depth += 1;
                        item_start = depth == 1;
                    }
                    Token::Punct('}') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Token::Punct(',') if depth == 1 => item_start = true,
                    Token::Ident(name) if item_start => {
                        names.push(name.clone());
                        item_start = false;
                    }
                    _ => item_start = false,
                }
            }
            names
        }
        _ => Vec::new(),
    }
}

/// The imports of one file. `module` is its module path (`["cm", "model"]`
/// for `src/cm/model.rs`, `["cli", "bench"]` for the binary's `bench`),
/// `aliases` the crate root's re-exports (`Result` -> `error`).
fn imports_of(
    file: &str,
    source: &str,
    module: &[String],
    aliases: &BTreeMap<String, String>,
) -> Vec<Import> {
    let top = &module[0];
    let in_binary = top == BINARY;
    let t = tokens(&blank_non_code(source));
    let mut out = Vec::new();
    let mut depth = 0usize;
    // Inline modules (`mod tests { .. }`) open at a brace depth.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut add = |names: Vec<String>, line: usize| {
        for name in names {
            let to = aliases.get(&name).cloned().unwrap_or(name);
            if layer_of(&to).is_some() && &to != top {
                out.push(Import {
                    from: top.clone(),
                    to,
                    at: format!("{file}:{line}"),
                });
            }
        }
    };
    let mut i = 0;
    while i < t.len() {
        let (tok, line) = &t[i];
        let after_path = |k: usize| matches!(t.get(k + 1), Some((Token::Path, _)));
        match tok {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d > depth) {
                    inline.pop();
                }
            }
            Token::Ident(kw) if kw == "mod" => {
                if let (Some((Token::Ident(name), _)), Some((Token::Punct('{'), _))) =
                    (t.get(i + 1), t.get(i + 2))
                {
                    inline.push((name.clone(), depth + 1));
                }
            }
            Token::Ident(root) if root == "lza" && in_binary && after_path(i) => {
                add(first_names(&t, i + 2), *line);
            }
            // `$crate` too. In the binary, `crate` is the binary's root.
            Token::Ident(root) if root == "crate" && after_path(i) && !in_binary => {
                add(first_names(&t, i + 2), *line);
            }
            Token::Ident(kw) if kw == "super" && after_path(i) => {
                let mut ups = 0;
                let mut k = i;
                while matches!(&t.get(k), Some((Token::Ident(s), _)) if s == "super")
                    && after_path(k)
                {
                    ups += 1;
                    k += 2;
                }
                // The module path without the binary's own name: its root
                // is `main.rs`.
                let mut path: Vec<String> = module[usize::from(in_binary)..].to_vec();
                path.extend(inline.iter().map(|(n, _)| n.clone()));
                if ups >= path.len() && !in_binary {
                    add(first_names(&t, k), *line);
                }
                i = k;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file under `src/`: `cm/model.rs` -> `[cm, model]`,
/// `cm/mod.rs` -> `[cm]`; the binary's `main.rs` is its root.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_str().unwrap().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "main")) && parts.len() > 1 {
        parts.pop();
    }
    parts
}

/// The names the crate root re-exports, and the module each comes from
/// (`pub use error::{CorruptKind, Error, Result}`).
fn root_aliases(lib: &str) -> BTreeMap<String, String> {
    let t = tokens(&blank_non_code(lib));
    let mut aliases = BTreeMap::new();
    for i in 0..t.len() {
        if let (Some((Token::Ident(kw), _)), Some((Token::Ident(m), _)), Some((Token::Path, _))) =
            (t.get(i), t.get(i + 1), t.get(i + 2))
            && kw == "use"
        {
            for name in first_names(&t, i + 3) {
                aliases.insert(name, m.clone());
            }
        }
    }
    aliases
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every import between top-level modules of `src/`.
fn src_imports() -> Vec<Import> {
    let src = src_dir();
    let aliases = root_aliases(&fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        if rel == Path::new("lib.rs") {
            continue;
        }
        let module = module_path(rel);
        let text = fs::read_to_string(&f).unwrap();
        out.extend(imports_of(
            &format!("src/{}", rel.display()),
            &text,
            &module,
            &aliases,
        ));
    }
    out
}

/// What breaks the layering: imports up a layer, and cycles (each as the
/// modules around it).
fn violations(imports: &[Import]) -> Vec<String> {
    let mut bad = Vec::new();
    for imp in imports {
        let (Some(from), Some(to)) = (layer_of(&imp.from), layer_of(&imp.to)) else {
            bad.push(format!(
                "{}: {} or {} is in no layer",
                imp.at, imp.from, imp.to
            ));
            continue;
        };
        if to > from {
            bad.push(format!(
                "{}: {} ({}) imports {} of the higher layer {}",
                imp.at, imp.from, LAYERS[from].0, imp.to, LAYERS[to].0
            ));
        }
    }
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for imp in imports {
        graph.entry(&imp.from).or_default().insert(&imp.to);
    }
    // Depth-first search; a back edge closes a cycle.
    fn visit<'a>(
        m: &'a str,
        graph: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
        cycles: &mut Vec<Vec<&'a str>>,
    ) {
        if let Some(at) = stack.iter().position(|s| *s == m) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(m);
            cycles.push(cycle);
            return;
        }
        if !done.insert(m) {
            return;
        }
        stack.push(m);
        for next in graph.get(m).into_iter().flatten() {
            visit(next, graph, stack, done, cycles);
        }
        stack.pop();
    }
    let (mut done, mut cycles) = (BTreeSet::new(), Vec::new());
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done, &mut cycles);
    }
    for cycle in cycles {
        // Where each step of the cycle is imported (its first place).
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|w| {
                let imp = imports.iter().find(|i| i.from == w[0] && i.to == w[1]);
                format!("{} -> {} at {}", w[0], w[1], imp.expect("an edge").at)
            })
            .collect();
        bad.push(format!(
            "import cycle: {} ({})",
            cycle.join(" -> "),
            steps.join("; ")
        ));
    }
    bad
}

#[test]
fn imports_follow_the_layers() {
    let imports = src_imports();
    // The scan finds the imports there are (a parser that found none would
    // pass everything).
    assert!(
        imports
            .iter()
            .any(|i| i.from == "reader" && i.to == "format"),
        "no reader -> format import found"
    );
    let bad = violations(&imports);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn every_module_has_a_layer() {
    let mut missing = Vec::new();
    for e in fs::read_dir(src_dir()).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_str().unwrap().to_string();
        let module = p.is_dir() || p.extension().is_some_and(|x| x == "rs");
        if module && name != "lib" && layer_of(&name).is_none() {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "modules in no layer of LAYERS (and the README's table): {missing:?}"
    );
}

/// The README's table of layers: per `src/` module named in the path
/// column, its layer (a blank layer cell continues the row above).
fn readme_layers() -> BTreeMap<String, String> {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let table = readme
        .split("\n## Repository")
        .nth(1)
        .expect("README has a Repository section");
    let mut out = BTreeMap::new();
    let mut layer = String::new();
    for row in table.lines().skip_while(|l| !l.starts_with("| layer")) {
        if !row.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        if cells.len() < 4 || cells[1].starts_with("---") || cells[1] == "layer" {
            continue;
        }
        if !cells[1].is_empty() {
            layer = cells[1].to_string();
        }
        for path in cells[2].split('`').skip(1).step_by(2) {
            if let Some(rest) = path.strip_prefix("src/") {
                let name = rest.split('/').next().unwrap().trim_end_matches(".rs");
                out.insert(name.to_string(), layer.clone());
            }
        }
    }
    out
}

#[test]
fn readme_table_matches() {
    let readme = readme_layers();
    let ours: BTreeMap<String, String> = LAYERS
        .iter()
        .flat_map(|(layer, mods)| mods.iter().map(|m| (m.to_string(), layer.to_string())))
        .collect();
    assert_eq!(readme, ours, "README's layer table differs from LAYERS");
}

// The checker itself, on planted sources.

fn plant(file: &str, module: &[&str], source: &str) -> Vec<Import> {
    let module: Vec<String> = module.iter().map(|s| s.to_string()).collect();
    let aliases = BTreeMap::from([("Result".to_string(), "error".to_string())]);
    imports_of(file, source, &module, &aliases)
}

fn targets(imports: &[Import]) -> Vec<&str> {
    imports.iter().map(|i| i.to.as_str()).collect()
}

#[test]
fn scan_reads_code_paths_only() {
    let src = r##"
//! [`crate::extract`] in a doc comment
use crate::{format::Entry, error::{Error, Result}};
use super::index::Tracker;
/* crate::create in a block /* nested */ crate::plan */
const S: &str = "crate::select";
const R: &str = r#"crate::symlinks"#;
const Q: char = '"';
fn f<'a>(x: &'a str) -> crate::Result<()> { let _ = crate::names::escape(x); Ok(()) }
#[cfg(test)]
mod tests {
    use super::*;
    use super::super::cm::Mixer;
}
"##;
    let found = plant("src/reader.rs", &["reader"], src);
    assert_eq!(
        targets(&found),
        ["format", "error", "index", "error", "names", "cm"]
    );
    assert_eq!(found[2].at, "src/reader.rs:4");
    // In a submodule, `super::` stays inside its top-level module.
    let inner = plant(
        "src/cm/model.rs",
        &["cm", "model"],
        "use super::mixer::Mixer;",
    );
    assert!(inner.is_empty(), "{inner:?}");
    // The binary's `crate::` is its own; `lza::` is the library.
    let bin = plant(
        "src/cli/main.rs",
        &["cli"],
        "mod bench; use crate::bench::run; use lza::extract::Sink;",
    );
    assert_eq!(targets(&bin), ["extract"]);
}

#[test]
fn planted_upward_import_and_cycle_fail() {
    let up = plant("src/reader.rs", &["reader"], "use crate::extract::Sink;");
    let bad = violations(&up);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].contains("reader (container) imports extract"),
        "{bad:?}"
    );

    let mut cycle = plant("src/codec.rs", &["codec"], "use crate::cm::Predictor;");
    cycle.extend(plant("src/cm/mod.rs", &["cm"], "use crate::codec::Frame;"));
    let bad = violations(&cycle);
    assert_eq!(
        bad,
        [
            "import cycle: cm -> codec -> cm (cm -> codec at src/cm/mod.rs:1; codec -> cm at src/codec.rs:1)"
        ]
    );

    let down = plant("src/extract.rs", &["extract"], "use crate::reader::Limits;");
    assert!(violations(&down).is_empty());
}
