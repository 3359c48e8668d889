//! Checking that an archive's symbolic links stay inside the destination
//! (format-spec section 9), in time linear in the links' bytes.
//!
//! A link's target is resolved lexically, component by component, from the
//! link's directory: `..` goes up one level (above the destination is an
//! escape), a component that names another symbolic link of the archive is
//! replaced by that link's target, resolved from *that* link's directory.
//! At most [`MAX_HOPS`] links are followed per resolution (as the kernel's
//! ELOOP limit), and at most [`MAX_COMPONENTS`] components are visited.
//!
//! The position is kept as a node of a trie of the links' paths (or, once it
//! leaves every link's ancestors, as a node plus a depth below it, where no
//! link can be met until `..` climbs back), so no path is ever rebuilt as a
//! string. Each link's own resolution is computed once and remembered (where
//! it ends, how many hops and components it took): a resolution that meets
//! a link whose resolution succeeded jumps straight to where that one ended,
//! which gives exactly the result of walking through it whenever the hop and
//! component counts still fit. Otherwise it walks through the link, so the
//! result, and the error message, are always those of the plain walk.

use crate::container::reader::PathTrie;
use crate::format::MAX_PATH_LEN;
use crate::format::error::{Error, Result};

/// Most symbolic links followed while resolving one link (as Linux's
/// `MAXSYMLINKS`); one more is "loops or leaves the destination".
pub const MAX_HOPS: u32 = 40;

/// Most target components visited while resolving one link, the components
/// of every followed link's target included: enough for [`MAX_HOPS`] + 1
/// targets of the format's longest length, so it never refuses a link the
/// format allows; it bounds the work of a resolution whatever the targets.
pub const MAX_COMPONENTS: u64 = (MAX_HOPS as u64 + 1) * MAX_PATH_LEN as u64;

/// Where a resolution stands: the trie node reached, plus `extra` components
/// below it that lie off the trie (no link is below them).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Pos {
    node: u32,
    extra: u32,
}

/// A successful resolution of one link on its own.
#[derive(Clone, Copy)]
struct Outcome {
    at: Pos,
    hops: u32,
    visited: u64,
}

enum Memo {
    Unknown,
    InProgress,
    Inside(Outcome),
    Fails(String),
}

struct Link<'a> {
    target: &'a str,
    /// The link's directory, where its target is resolved from.
    start: Pos,
    /// Whether `start` is the link's parent node, where a walk through it
    /// goes on from, so that its own resolution can stand for that walk
    /// (false only for paths outside the format, such as "/l").
    jumpable: bool,
    memo: Memo,
}

/// Checks the symbolic links of one archive; see the module docs.
pub struct SymlinkChecker<'a> {
    trie: PathTrie,
    /// For each trie node, the index in `links` of the link at that path, or
    /// `NO_LINK`.
    link_at: Vec<u32>,
    links: Vec<Link<'a>>,
    /// Components visited by all checks so far: the checker's cost, which
    /// stays linear in the links' size (tests bound it).
    steps: u64,
}

const NO_LINK: u32 = u32::MAX;

/// Nested resolutions deeper than this are walked instead (a chain that
/// deep exceeds [`MAX_HOPS`] anyway); keeps the recursion shallow.
const MAX_NESTING: u32 = MAX_HOPS + 1;

impl<'a> SymlinkChecker<'a> {
    /// A checker for the links `(path, target)`; a later link with the same
    /// path replaces an earlier one. Fails only if the paths have more
    /// distinct components than a trie holds.
    pub fn new(links: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut c = SymlinkChecker {
            trie: PathTrie::new(),
            link_at: vec![NO_LINK],
            links: Vec::new(),
            steps: 0,
        };
        let full = || Error::Limit("too many distinct symbolic link path components".into());
        for (path, target) in links {
            let mut node = PathTrie::ROOT;
            for name in path.split('/') {
                node = c.trie.child_or_add(node, name).ok_or_else(full)?.0;
            }
            c.link_at.resize(c.trie.len(), NO_LINK);
            let (dir, _) = split_leaf(path);
            // As the plain walk does: the directory's components, none for "".
            let start_node = if dir.is_empty() {
                PathTrie::ROOT
            } else {
                c.trie.find(dir).expect("an ancestor of an added path")
            };
            let index = u32::try_from(c.links.len())
                .ok()
                .filter(|&i| i != NO_LINK)
                .ok_or_else(full)?;
            c.link_at[node as usize] = index;
            c.links.push(Link {
                target,
                start: Pos {
                    node: start_node,
                    extra: 0,
                },
                jumpable: c.trie.parent(node) == Some(start_node),
                memo: Memo::Unknown,
            });
        }
        Ok(c)
    }

    /// Resolve the link at `path` through the archive's links and check that
    /// it never leaves the destination; the error says why it does.
    ///
    /// Panics if `path` is not one of the links given to [`Self::new`].
    pub fn check(&mut self, path: &str) -> std::result::Result<(), String> {
        let link = self
            .trie
            .find(path)
            .map(|n| self.link_at[n as usize])
            .filter(|&i| i != NO_LINK)
            .unwrap_or_else(|| panic!("{path:?} is not a symbolic link of the archive"));
        self.resolve(link as usize, 0).map(|_| ())
    }

    /// Components visited by all checks so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Link `i`'s own resolution, remembered.
    fn resolve(&mut self, i: usize, nesting: u32) -> std::result::Result<Outcome, String> {
        match &self.links[i].memo {
            Memo::Inside(o) => return Ok(*o),
            Memo::Fails(e) => return Err(e.clone()),
            Memo::InProgress => unreachable!("callers walk through links in progress"),
            Memo::Unknown => {}
        }
        let target = self.links[i].target;
        let result = if target.starts_with('/') {
            Err(format!("symlink target {target:?} is absolute"))
        } else {
            self.links[i].memo = Memo::InProgress;
            self.walk(self.links[i].start, target, nesting)
        };
        self.links[i].memo = match &result {
            Ok(o) => Memo::Inside(*o),
            Err(e) => Memo::Fails(e.clone()),
        };
        result
    }

    /// Resolve `target` from `start`.
    fn walk(
        &mut self,
        start: Pos,
        target: &'a str,
        nesting: u32,
    ) -> std::result::Result<Outcome, String> {
        let mut pos = start;
        let mut hops = 0u32;
        let mut visited = 0u64;
        // The components still to visit: the rest of each target being
        // resolved, innermost last.
        let mut todo = vec![target.split('/')];
        while let Some(top) = todo.last_mut() {
            let Some(name) = top.next() else {
                todo.pop();
                continue;
            };
            visited += 1;
            self.steps += 1;
            if visited > MAX_COMPONENTS {
                return Err(format!(
                    "symlink target {target:?}: symlink resolution too long \
                     (more than {MAX_COMPONENTS} components)"
                ));
            }
            match name {
                "" | "." => {}
                ".." => {
                    if pos.extra > 0 {
                        pos.extra -= 1;
                    } else if let Some(parent) = self.trie.parent(pos.node) {
                        pos.node = parent;
                    } else {
                        return Err(format!(
                            "symlink target {target:?} points outside the destination"
                        ));
                    }
                }
                _ if pos.extra > 0 => pos.extra += 1,
                _ => {
                    let Some(node) = self.trie.child(pos.node, name) else {
                        pos.extra = 1;
                        continue;
                    };
                    pos.node = node;
                    let j = self.link_at[node as usize];
                    if j == NO_LINK {
                        continue;
                    }
                    let link = &self.links[j as usize];
                    let jumpable = link.jumpable;
                    if jumpable && matches!(link.memo, Memo::Unknown) && nesting < MAX_NESTING {
                        // Its failure is found again below by walking
                        // through it, with this resolution's message.
                        let _ = self.resolve(j as usize, nesting + 1);
                    }
                    let link = &self.links[j as usize];
                    if let (true, Memo::Inside(o)) = (jumpable, &link.memo)
                        && hops + 1 + o.hops <= MAX_HOPS
                        && visited + o.visited <= MAX_COMPONENTS
                    {
                        pos = o.at;
                        hops += 1 + o.hops;
                        visited += o.visited;
                        continue;
                    }
                    // Walk through it.
                    hops += 1;
                    let next = link.target;
                    if hops > MAX_HOPS || next.starts_with('/') {
                        let here = self.trie.path(node);
                        return Err(format!(
                            "symlink target {target:?} loops or leaves the destination through {here:?}"
                        ));
                    }
                    pos.node = self.trie.parent(node).expect("a link is not the root");
                    todo.push(next.split('/'));
                }
            }
        }
        Ok(Outcome {
            at: pos,
            hops,
            visited,
        })
    }
}

/// The links among `links` (path, target) that extraction refuses, in the
/// order given, each with the reason; `allow_absolute` accepts a link whose
/// own target is absolute (one that leads to or through such a link is
/// still refused). `create` warns about the same links, and `verify`
/// names them.
pub fn refused<'a>(
    links: &[(&'a str, &'a str)],
    allow_absolute: bool,
) -> Result<Vec<(&'a str, String)>> {
    let mut checker = SymlinkChecker::new(links.iter().copied())?;
    let mut out = Vec::new();
    for &(path, target) in links {
        if allow_absolute && target.starts_with('/') {
            continue;
        }
        if let Err(reason) = checker.check(path) {
            out.push((path, reason));
        }
    }
    Ok(out)
}

pub(crate) fn split_leaf(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(links: &[(&str, &str)], path: &str) -> std::result::Result<(), String> {
        SymlinkChecker::new(links.iter().copied())
            .unwrap()
            .check(path)
    }

    #[test]
    fn refused_links_in_order_with_absolute_allowed_or_not() {
        let links = [
            ("abs", "/etc/hostname"),
            ("ok", "abs"),
            ("d/up", "../../x"),
            ("d/fine", "../ok"),
            ("via", "abs/x"),
        ];
        fn names(v: Vec<(&str, String)>) -> Vec<&str> {
            v.into_iter().map(|(p, _)| p).collect()
        }
        assert_eq!(
            names(refused(&links, false).unwrap()),
            ["abs", "ok", "d/up", "d/fine", "via"]
        );
        // Absolute targets allowed: only the link whose own target is
        // absolute; one that leads to or through it is still refused.
        assert_eq!(
            names(refused(&links, true).unwrap()),
            ["ok", "d/up", "d/fine", "via"]
        );
    }

    #[test]
    fn messages() {
        let err = check(&[("l", "/etc")], "l").unwrap_err();
        assert_eq!(err, "symlink target \"/etc\" is absolute");
        let err = check(&[("a/l", "../../b")], "a/l").unwrap_err();
        assert_eq!(
            err,
            "symlink target \"../../b\" points outside the destination"
        );
        let err = check(&[("x", "y"), ("y", "x")], "x").unwrap_err();
        assert!(
            err.starts_with("symlink target \"y\" loops or leaves the destination through "),
            "{err}"
        );
        let err = check(&[("d/s", "/etc"), ("l", "d/s/x")], "l").unwrap_err();
        assert_eq!(
            err,
            "symlink target \"d/s/x\" loops or leaves the destination through \"d/s\""
        );
    }

    #[test]
    fn hop_limit_is_exact() {
        // l0 -> l1 -> ... -> l{n}, l{n} -> "f": resolving l0 follows n links.
        let chain = |n: usize| -> Vec<(String, String)> {
            let mut v: Vec<(String, String)> = (0..n)
                .map(|i| (format!("l{i}"), format!("l{}", i + 1)))
                .collect();
            v.push((format!("l{n}"), "f".into()));
            v
        };
        for (n, ok) in [(40, true), (41, false)] {
            let c = chain(n);
            let links: Vec<(&str, &str)> =
                c.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
            // In order, in reverse (memoised from the end of the chain), and
            // starting from the middle.
            for order in [
                (0..=n).collect::<Vec<_>>(),
                (0..=n).rev().collect(),
                (n / 2..=n).chain(0..n / 2).collect(),
            ] {
                let mut checker = SymlinkChecker::new(links.iter().copied()).unwrap();
                let first = order
                    .iter()
                    .map(|&i| checker.check(links[i].0))
                    .collect::<Vec<_>>();
                let l0 = first[order.iter().position(|&i| i == 0).unwrap()].clone();
                assert_eq!(l0.is_ok(), ok, "n={n} order={order:?}: {l0:?}");
                // The same answer as a fresh checker's.
                assert_eq!(l0, check(&links, "l0"));
            }
        }
    }

    #[test]
    fn memo_respects_context() {
        // `a/b/s` is fine from its own directory, and the same components
        // after it are resolved where it ended.
        let links = [("a/b/s", "../.."), ("a/l", "b/s/../x"), ("m", "a/b/s/a")];
        assert!(check(&links, "a/b/s").is_ok());
        assert!(check(&links, "a/l").is_err());
        assert!(check(&links, "m").is_ok());
        let mut c = SymlinkChecker::new(links.iter().copied()).unwrap();
        assert!(c.check("a/b/s").is_ok());
        assert!(c.check("m").is_ok());
        assert!(c.check("a/l").is_err());
    }

    #[test]
    fn component_cap() {
        let long = "a/".repeat(MAX_COMPONENTS as usize);
        let err = check(&[("l", &long)], "l").unwrap_err();
        assert!(err.contains("symlink resolution too long"), "{err}");
        let fits = "a/".repeat(MAX_COMPONENTS as usize / 2 - 1);
        assert!(check(&[("l", &fits)], "l").is_ok());
    }

    /// The resolution as first written (a string stack, rejoined at every
    /// component): slow, but obviously the specification.
    fn plain_walk(
        links: &std::collections::HashMap<&str, &str>,
        path: &str,
    ) -> std::result::Result<(), String> {
        let (dir, _) = split_leaf(path);
        let mut stack: Vec<String> = if dir.is_empty() {
            Vec::new()
        } else {
            dir.split('/').map(String::from).collect()
        };
        let target = links[path];
        if target.starts_with('/') {
            return Err(format!("symlink target {target:?} is absolute"));
        }
        let mut todo: std::collections::VecDeque<String> =
            target.split('/').map(String::from).collect();
        let mut hops = 0;
        while let Some(c) = todo.pop_front() {
            match c.as_str() {
                "" | "." => {}
                ".." => {
                    if stack.pop().is_none() {
                        return Err(format!(
                            "symlink target {target:?} points outside the destination"
                        ));
                    }
                }
                _ => {
                    stack.push(c);
                    let here = stack.join("/");
                    if let Some(next) = links.get(here.as_str()) {
                        hops += 1;
                        if hops > 40 || next.starts_with('/') {
                            return Err(format!(
                                "symlink target {target:?} loops or leaves the destination through {here:?}"
                            ));
                        }
                        stack.pop();
                        for (i, part) in next.split('/').enumerate() {
                            todo.insert(i, part.to_owned());
                        }
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn agrees_with_the_plain_walk() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        // "" makes paths outside the format ("/l", "a//l"), which must agree too.
        let names = ["a", "b", "c", "l", "m", ""];
        let pieces = ["a", "b", "c", "l", "m", "..", ".", "", "/"];
        let (mut oks, mut errs) = (0, 0);
        for round in 0..4000 {
            let mut map = std::collections::HashMap::new();
            let mut order = Vec::new();
            let n_links = 1 + rand(8);
            for _ in 0..n_links {
                let depth = 1 + rand(4);
                let path = (0..depth)
                    .map(|_| names[rand(names.len())])
                    .collect::<Vec<_>>()
                    .join("/");
                let len = 1 + rand(7);
                let mut target = String::new();
                for k in 0..len {
                    let p = pieces[rand(pieces.len())];
                    if p == "/" {
                        target.push('/');
                        continue;
                    }
                    if k > 0 && !target.ends_with('/') {
                        target.push('/');
                    }
                    target.push_str(p);
                }
                if target.is_empty() {
                    target.push('.');
                }
                if rand(4) == 0 {
                    // Often a link in a chain: to another link's path.
                    if let Some(p) = order.get(rand(order.len().max(1))) {
                        let up = "../".repeat(depth - 1);
                        target = format!("{up}{p}");
                    }
                }
                if map.insert(path.clone(), target).is_none() {
                    order.push(path);
                }
            }
            let links: std::collections::HashMap<&str, &str> =
                map.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
            // Check in several orders with one checker: memoised results
            // must not depend on what was resolved before.
            let mut checker = SymlinkChecker::new(links.iter().map(|(&p, &t)| (p, t))).unwrap();
            if round % 2 == 1 {
                order.reverse();
            }
            for p in &order {
                let want = plain_walk(&links, p);
                assert_eq!(checker.check(p), want, "{links:?} {p}");
                assert_eq!(
                    check(&links.iter().map(|(&p, &t)| (p, t)).collect::<Vec<_>>(), p),
                    want
                );
                if want.is_ok() {
                    oks += 1;
                } else {
                    errs += 1;
                }
            }
        }
        assert!(oks > 1000 && errs > 1000, "{oks} {errs}");
    }

    #[test]
    fn deep_chains_agree_with_the_plain_walk() {
        // Links whose targets climb and descend through deep directories and
        // other links, near the hop limit.
        for n in [38usize, 39, 40, 41] {
            let deep = |i: usize| format!("{}m{i}", "a/".repeat(30));
            let mut owned: Vec<(String, String)> = (0..n)
                .map(|i| (deep(i), format!("{}{}", "../".repeat(30), deep(i + 1))))
                .collect();
            owned.push((deep(n), ".".into()));
            owned.push(("y".into(), deep(0)));
            owned.push(("x".into(), "y/b".into()));
            let links: std::collections::HashMap<&str, &str> = owned
                .iter()
                .map(|(p, t)| (p.as_str(), t.as_str()))
                .collect();
            let mut checker =
                SymlinkChecker::new(owned.iter().map(|(p, t)| (p.as_str(), t.as_str()))).unwrap();
            for (p, _) in &owned {
                assert_eq!(checker.check(p), plain_walk(&links, p), "n={n} {p}");
            }
        }
    }
}
