//! The library is layered one way (README, "Repository"): each layer is
//! one folder of `src/`, no import points from a lower layer to a higher
//! one, and no module imports one that imports it.
//!
//! A module here is a layer (the root of its folder, `codecs`) or one of
//! the modules its root declares (a file or folder in the layer's folder:
//! `codecs::cm`, `format::error`); a module's layer is its folder. An
//! import is a `crate::` or `super::` path in code, or in a layer's root a
//! path through one of its modules (comments and string literals are
//! blanked first; `#[cfg(test)]` code and `tests.rs` files count too),
//! resolved to the module it names; in `src/cli/`, the binary, `lza::`
//! paths name the library's modules.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, bottom up: each one's folder in `src/` and its name. A
/// module may import modules of its own layer and of those before it.
/// `lib.rs`, the crate root, declares the library's layers and is in none.
/// The README's table says the same (checked by `readme_table_matches`).
const LAYERS: &[(&str, &str)] = &[
    ("runtime", "runtime"),
    ("format", "format"),
    ("container", "container"),
    ("codecs", "codecs"),
    ("plan", "coding plan"),
    ("archive", "archive I/O"),
    ("cli", "command line"),
];

/// The layer of the binary, whose `crate::` is not the library's.
const BINARY: &str = "cli";

/// The layer of a module (`codecs::cm` -> codecs), by its folder.
fn layer_of(module: &str) -> Option<usize> {
    let folder = module.split("::").next().unwrap();
    LAYERS.iter().position(|(f, _)| *f == folder)
}

/// Per layer folder, the modules its root declares (its files and folders
/// but `mod.rs`).
type Tree = BTreeMap<String, BTreeSet<String>>;

/// The module that an absolute path (`[codecs, cm, Predictor]`) is in:
/// the layer's module the path goes through, else the layer's root;
/// `None` for a path outside the layers.
fn module_of(tree: &Tree, path: &[String]) -> Option<String> {
    let children = tree.get(path.first()?)?;
    Some(match path.get(1) {
        Some(child) if children.contains(child) => format!("{}::{child}", path[0]),
        _ => path[0].clone(),
    })
}

/// One import: the module it is in, the module it names, and where (file
/// and line).
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

/// The paths at `t[at..]`, each as its first names (up to `depth`): one
/// path, or each of a `{...}` group's, nested groups included.
fn use_paths(t: &[(Token, usize)], at: usize, depth: usize) -> Vec<Vec<String>> {
    match t.get(at) {
        Some((Token::Ident(name), _)) => {
            let rest = if depth > 1 && matches!(t.get(at + 1), Some((Token::Path, _))) {
                use_paths(t, at + 2, depth - 1)
            } else {
                Vec::new()
            };
            if rest.is_empty() {
                return vec![vec![name.clone()]];
            }
            rest.into_iter()
                .map(|mut p| {
                    p.insert(0, name.clone());
                    p
                })
                .collect()
        }
        Some((Token::Punct('{'), _)) => {
            let mut out = Vec::new();
            let mut level = 0;
            let mut item_start = false;
            for k in at..t.len() {
                match &t[k].0 {
                    Token::Punct('{') => {
                        level += 1;
                        item_start = level == 1;
                        continue;
                    }
                    Token::Punct('}') => {
                        level -= 1;
                        if level == 0 {
                            break;
                        }
                    }
                    Token::Punct(',') if level == 1 => {
                        item_start = true;
                        continue;
                    }
                    _ if item_start => out.extend(use_paths(t, k, depth)),
                    _ => {}
                }
                item_start = false;
            }
            out
        }
        _ => Vec::new(),
    }
}

/// How deep a path is read: the layer, its module, and one name more.
const DEPTH: usize = 3;

/// The imports of one file. `module` is its module path (`["codecs", "cm",
/// "model"]` for `src/codecs/cm/model.rs`, `["cli", "bench"]` for the
/// binary's `bench`), `aliases` the crate root's re-exports (`Result` ->
/// `format::error::Result`).
fn imports_of(
    file: &str,
    source: &str,
    module: &[String],
    tree: &Tree,
    aliases: &BTreeMap<String, Vec<String>>,
) -> Vec<Import> {
    let in_binary = module[0] == BINARY;
    let from = if in_binary {
        BINARY.to_string()
    } else {
        module_of(tree, module).unwrap_or_else(|| module[0].clone())
    };
    // In a layer's root, its modules are in scope by name (`cm::Preset`).
    let root_children = match module.len() {
        1 if !in_binary => tree.get(&module[0]).cloned().unwrap_or_default(),
        _ => BTreeSet::new(),
    };
    let t = tokens(&blank_non_code(source));
    let mut out = Vec::new();
    let mut depth = 0usize;
    // Inline modules (`mod tests { .. }`) open at a brace depth.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut add = |paths: Vec<Vec<String>>, line: usize| {
        for mut path in paths {
            if let Some(alias) = path.first().and_then(|p| aliases.get(p)) {
                path.splice(0..1, alias.iter().cloned());
            }
            if let Some(to) = module_of(tree, &path)
                && to != from
            {
                out.push(Import {
                    from: from.clone(),
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
        let before_path = i > 0 && matches!(t[i - 1].0, Token::Path);
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
                add(use_paths(&t, i + 2, DEPTH), *line);
            }
            // `$crate` too. In the binary, `crate` is the binary's root.
            Token::Ident(root) if root == "crate" && after_path(i) && !in_binary => {
                add(use_paths(&t, i + 2, DEPTH), *line);
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
                let mut path = module.to_vec();
                path.extend(inline.iter().map(|(n, _)| n.clone()));
                if !in_binary && ups <= path.len() {
                    path.truncate(path.len() - ups);
                    let paths = use_paths(&t, k, DEPTH)
                        .into_iter()
                        .map(|p| path.iter().cloned().chain(p).collect())
                        .collect();
                    add(paths, *line);
                }
                i = k;
                continue;
            }
            Token::Ident(name) if root_children.contains(name) && after_path(i) && !before_path => {
                add(vec![vec![module[0].clone(), name.clone()]], *line);
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

/// The module path of a file under `src/`: `codecs/cm/model.rs` ->
/// `[codecs, cm, model]`, `codecs/cm/mod.rs` -> `[codecs, cm]`; the
/// binary's `main.rs` is its root.
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

/// The names the crate root re-exports, each with its full path
/// (`pub use format::error::{CorruptKind, Error, Result}`).
fn root_aliases(lib: &str) -> BTreeMap<String, Vec<String>> {
    let t = tokens(&blank_non_code(lib));
    let mut aliases = BTreeMap::new();
    for i in 0..t.len() {
        if matches!(&t[i].0, Token::Ident(kw) if kw == "use") {
            for path in use_paths(&t, i + 1, usize::MAX) {
                aliases.insert(path.last().unwrap().clone(), path);
            }
        }
    }
    aliases
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The entries of `src/` and, per layer folder there, the modules its
/// root declares.
fn src_tree() -> (Vec<(String, bool)>, Tree) {
    let mut entries = Vec::new();
    let mut tree = Tree::new();
    for e in fs::read_dir(src_dir()).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if p.is_dir() && layer_of(&name).is_some() {
            let children = fs::read_dir(&p)
                .unwrap()
                .map(|c| c.unwrap().path())
                .filter(|c| c.is_dir() || c.extension().is_some_and(|x| x == "rs"))
                .map(|c| c.file_stem().unwrap().to_str().unwrap().to_string())
                .filter(|c| c != "mod" && c != "main")
                .collect();
            tree.insert(name.clone(), children);
        }
        entries.push((name, p.is_dir()));
    }
    entries.sort();
    (entries, tree)
}

/// Every import between modules of `src/`.
fn src_imports() -> Vec<Import> {
    let src = src_dir();
    let aliases = root_aliases(&fs::read_to_string(src.join("lib.rs")).unwrap());
    let (_, tree) = src_tree();
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
            &tree,
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
                imp.at, imp.from, LAYERS[from].1, imp.to, LAYERS[to].1
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
    for (from, to) in [
        ("container::reader", "format"),
        ("codecs::cmlm", "codecs::cm"),
    ] {
        assert!(
            imports.iter().any(|i| i.from == from && i.to == to),
            "no {from} -> {to} import found"
        );
    }
    let bad = violations(&imports);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// What in `src/` (names, and whether each is a folder) is outside the
/// layers: everything but `lib.rs` is a layer's folder.
fn strays(entries: &[(String, bool)]) -> Vec<String> {
    entries
        .iter()
        .filter(|(name, dir)| !(name == "lib.rs" || *dir && layer_of(name).is_some()))
        .map(|(name, _)| name.clone())
        .collect()
}

#[test]
fn every_file_is_in_a_layer_folder() {
    let (entries, tree) = src_tree();
    let strays = strays(&entries);
    assert!(
        strays.is_empty(),
        "in src/ but in no layer's folder of LAYERS (and the README's table): {strays:?}"
    );
    // Each layer has its folder, and the crate root declares the library's.
    let lib = tokens(&blank_non_code(
        &fs::read_to_string(src_dir().join("lib.rs")).unwrap(),
    ));
    let declared: BTreeSet<&str> = lib
        .windows(2)
        .filter_map(|w| match (&w[0].0, &w[1].0) {
            (Token::Ident(kw), Token::Ident(name)) if kw == "mod" => Some(name.as_str()),
            _ => None,
        })
        .collect();
    for (folder, _) in LAYERS {
        assert!(tree.contains_key(*folder), "no folder src/{folder}/");
        let root = if *folder == BINARY {
            "main.rs"
        } else {
            "mod.rs"
        };
        assert!(
            src_dir().join(folder).join(root).is_file(),
            "no src/{folder}/{root}"
        );
        assert_eq!(
            declared.contains(folder),
            *folder != BINARY,
            "lib.rs and the layer {folder}"
        );
    }
    assert_eq!(
        declared.len(),
        LAYERS.len() - 1,
        "lib.rs declares {declared:?}"
    );
}

/// The README's table of layers: per folder of `src/` named in the path
/// column, its layer (a blank layer cell continues the row above); and
/// the paths it names.
fn readme_layers() -> (BTreeMap<String, String>, Vec<String>) {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let table = readme
        .split("\n## Repository")
        .nth(1)
        .expect("README has a Repository section");
    let mut out = BTreeMap::new();
    let mut paths = Vec::new();
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
                let folder = rest.split('/').next().unwrap();
                let before = out.insert(folder.to_string(), layer.clone());
                assert!(
                    before.is_none_or(|b| b == layer),
                    "README: src/{folder}/ in two layers"
                );
                paths.push(path.to_string());
            }
        }
    }
    (out, paths)
}

#[test]
fn readme_table_matches() {
    let (readme, paths) = readme_layers();
    let ours: BTreeMap<String, String> = LAYERS
        .iter()
        .map(|(folder, layer)| (folder.to_string(), layer.to_string()))
        .collect();
    assert_eq!(readme, ours, "README's layer table differs from LAYERS");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for p in paths {
        assert!(
            root.join(&p).exists(),
            "README's table names {p}, not there"
        );
    }
}

// The checker itself, on planted sources.

fn plant_tree() -> Tree {
    [
        ("runtime", &["names", "progress"][..]),
        ("format", &["error", "member"]),
        ("container", &["reader", "index"]),
        ("codecs", &["cm", "lm", "cmlm", "models"]),
        ("plan", &[]),
        ("archive", &["create", "extract", "select", "symlinks"]),
    ]
    .iter()
    .map(|(l, m)| (l.to_string(), m.iter().map(|s| s.to_string()).collect()))
    .collect()
}

fn plant(file: &str, module: &[&str], source: &str) -> Vec<Import> {
    let module: Vec<String> = module.iter().map(|s| s.to_string()).collect();
    let aliases = root_aliases("pub use format::error::{CorruptKind, Error, Result};");
    imports_of(file, source, &module, &plant_tree(), &aliases)
}

fn targets(imports: &[Import]) -> Vec<&str> {
    imports.iter().map(|i| i.to.as_str()).collect()
}

#[test]
fn scan_reads_code_paths_only() {
    let src = r##"
//! [`crate::archive::extract`] in a doc comment
use crate::{format::Entry, format::error::{Error, Result}};
use super::index::Tracker;
/* crate::archive::create in a block /* nested */ crate::plan */
const S: &str = "crate::archive::select";
const R: &str = r#"crate::archive::symlinks"#;
const Q: char = '"';
fn f<'a>(x: &'a str) -> crate::Result<()> { let _ = crate::runtime::names::escape(x); Ok(()) }
#[cfg(test)]
mod tests {
    use super::*;
    use super::super::super::codecs::{cm::Mixer, self};
}
"##;
    let found = plant("src/container/reader.rs", &["container", "reader"], src);
    assert_eq!(
        targets(&found),
        [
            "format",
            "format::error",
            "format::error",
            "container::index",
            "format::error",
            "runtime::names",
            "codecs::cm",
            "codecs"
        ]
    );
    assert!(found.iter().all(|i| i.from == "container::reader"));
    assert_eq!(found[3].at, "src/container/reader.rs:4");
    // In a module of a layer, `super::` stays inside it.
    let inner = plant(
        "src/codecs/cm/model.rs",
        &["codecs", "cm", "model"],
        "use super::mixer::Mixer; fn f() { super::super::cm::coder::x(); }",
    );
    assert!(inner.is_empty(), "{inner:?}");
    // A layer's root reaches its modules by name.
    let root = plant(
        "src/codecs/mod.rs",
        &["codecs"],
        "pub mod cm; use cm::Preset; fn f() { lm::x(); let _ = a::models::y; }",
    );
    assert_eq!(targets(&root), ["codecs::cm", "codecs::lm"]);
    // The binary's `crate::` is its own; `lza::` is the library.
    let bin = plant(
        "src/cli/main.rs",
        &["cli"],
        "mod bench; use crate::bench::run; use lza::archive::extract::Sink; fn f() -> lza::Result<()> {}",
    );
    assert_eq!(targets(&bin), ["archive::extract", "format::error"]);
    assert!(bin.iter().all(|i| i.from == "cli"));
}

#[test]
fn planted_upward_import_and_cycle_fail() {
    let up = plant(
        "src/container/reader.rs",
        &["container", "reader"],
        "use crate::archive::extract::Sink;",
    );
    let bad = violations(&up);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].contains(
            "container::reader (container) imports archive::extract of the higher layer archive I/O"
        ),
        "{bad:?}"
    );

    let mut cycle = plant(
        "src/codecs/mod.rs",
        &["codecs"],
        "use crate::codecs::cm::Predictor;",
    );
    cycle.extend(plant(
        "src/codecs/cm/mod.rs",
        &["codecs", "cm"],
        "use crate::codecs::Frame;",
    ));
    let bad = violations(&cycle);
    assert_eq!(
        bad,
        [
            "import cycle: codecs -> codecs::cm -> codecs (codecs -> codecs::cm at src/codecs/mod.rs:1; codecs::cm -> codecs at src/codecs/cm/mod.rs:1)"
        ]
    );

    let down = plant(
        "src/archive/extract.rs",
        &["archive", "extract"],
        "use crate::container::reader::Limits;",
    );
    assert!(violations(&down).is_empty());
}

#[test]
fn planted_strays_fail() {
    let entries = [
        ("lib.rs", false),
        ("codecs", true),
        ("plan.rs", false),
        ("tools", true),
        ("cli", true),
    ]
    .map(|(n, d)| (n.to_string(), d));
    assert_eq!(strays(&entries), ["plan.rs", "tools"]);
}
