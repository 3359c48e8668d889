//! Extracting part of an archive, as tar does: member selection by name or
//! glob, `--strip-components`, writing file data to standard output, and
//! checking an archive against extraction's link rules without extracting;
//! and the files of one range of an indexed archive ([`RangeFilter`]).
//!
//! These are [`Sink`]s that sit in front of another one. The archive is
//! still read in full and its records and stream checksum checked, but the
//! data of files that are not selected is not decoded: a file of its own
//! is skipped, and a solid block only when none of its files is selected
//! ([`Sink::wants`]).

use std::collections::HashSet;
use std::io::Write;

use globset::{Glob, GlobMatcher};

use crate::archive::extract::Sink;
use crate::format::error::{Error, Result};
use crate::format::{Entry, EntryKind};

/// Member names or patterns given on the command line.
pub struct Members {
    names: Vec<String>,
    globs: Option<Vec<GlobMatcher>>,
    matched: Vec<bool>,
}

impl Members {
    /// Select entries by `names`: an entry is selected when its path is one
    /// of them or lies below one (a leading `./` and trailing `/` are
    /// ignored). With `wildcards`, each name is a glob (GNU tar's
    /// `--wildcards`: anchored at the start of the path, `*`, `?` and `[...]`
    /// match `/` too) that selects the entries it matches and everything
    /// below them.
    pub fn new(names: &[String], wildcards: bool) -> Result<Members> {
        let names: Vec<String> = names.iter().map(|n| normalize(n).to_owned()).collect();
        let globs = if wildcards {
            let mut v = Vec::with_capacity(names.len());
            for n in &names {
                let g = Glob::new(n).map_err(|e| Error::BadInput {
                    path: n.into(),
                    reason: format!("bad pattern: {e}"),
                })?;
                v.push(g.compile_matcher());
            }
            Some(v)
        } else {
            None
        };
        Ok(Members {
            matched: vec![false; names.len()],
            names,
            globs,
        })
    }

    /// Whether `path` is selected (and note which names matched).
    pub fn selects(&mut self, path: &str) -> bool {
        let mut any = false;
        for i in 0..self.names.len() {
            let hit = match &self.globs {
                Some(globs) => {
                    globs[i].is_match(path)
                        || path
                            .match_indices('/')
                            .any(|(j, _)| globs[i].is_match(&path[..j]))
                }
                None => {
                    let n = &self.names[i];
                    n.is_empty()
                        || path == n
                        || (path.starts_with(n.as_str()) && path.as_bytes()[n.len()] == b'/')
                }
            };
            if hit {
                self.matched[i] = true;
                any = true;
            }
        }
        any
    }

    /// The names that selected nothing, as given (normalized).
    pub fn unmatched(&self) -> Vec<&str> {
        self.names
            .iter()
            .zip(&self.matched)
            .filter(|(_, m)| !**m)
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

/// A member name without a leading `./` (repeated) and trailing `/`s.
fn normalize(name: &str) -> &str {
    let mut n = name;
    while let Some(rest) = n.strip_prefix("./") {
        n = rest.trim_start_matches('/');
    }
    let n = n.trim_end_matches('/');
    if n == "." { "" } else { n }
}

/// `path` without its first `n` components, `None` when nothing is left.
pub fn strip_components(path: &str, n: usize) -> Option<&str> {
    if n == 0 {
        return Some(path);
    }
    path.match_indices('/')
        .nth(n - 1)
        .map(|(i, _)| &path[i + 1..])
        .filter(|rest| !rest.is_empty())
}

/// Passes the selected entries, renamed by `--strip-components`, to the sink
/// behind it; the data of the others is dropped. Hard links whose target was
/// not passed are reported and skipped.
pub struct Select<'a> {
    inner: &'a mut dyn Sink,
    members: Option<Members>,
    strip: usize,
    /// Files passed so far (their new paths), for hard links.
    passed_files: HashSet<String>,
    passing: bool,
    on_entry: Box<dyn FnMut(&Entry) + 'a>,
    report: Box<dyn FnMut(&Error) + 'a>,
    failures: u64,
    entries: u64,
}

impl<'a> Select<'a> {
    /// Select with `members` (all entries if `None`), stripping `strip`
    /// leading components, in front of `inner`. `on_entry` sees each entry
    /// passed on, as it was in the archive; `report` each hard link skipped
    /// because its target was not extracted.
    pub fn new(
        inner: &'a mut dyn Sink,
        members: Option<Members>,
        strip: usize,
        on_entry: impl FnMut(&Entry) + 'a,
        report: impl FnMut(&Error) + 'a,
    ) -> Select<'a> {
        Select {
            inner,
            members,
            strip,
            passed_files: HashSet::new(),
            passing: false,
            on_entry: Box::new(on_entry),
            report: Box::new(report),
            failures: 0,
            entries: 0,
        }
    }

    /// Hard links skipped because their target was not extracted.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Entries passed on.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// The member names that matched no entry.
    pub fn unmatched(&self) -> Vec<&str> {
        self.members.as_ref().map_or(Vec::new(), Members::unmatched)
    }

    fn track_links(&self) -> bool {
        self.members.is_some() || self.strip > 0
    }
}

impl Sink for Select<'_> {
    fn start(&mut self) -> Result<()> {
        self.inner.start()
    }

    fn wants(&mut self, entry: &Entry) -> bool {
        let selected = match self.members.as_mut() {
            Some(m) => m.selects(&entry.path),
            None => true,
        };
        selected && strip_components(&entry.path, self.strip).is_some() && self.inner.wants(entry)
    }

    fn entry(&mut self, entry: &Entry) -> Result<()> {
        self.passing = false;
        if let Some(m) = self.members.as_mut()
            && !m.selects(&entry.path)
        {
            return Ok(());
        }
        let Some(path) = strip_components(&entry.path, self.strip) else {
            return Ok(());
        };
        let mut e = entry.clone();
        e.path = path.to_owned();
        if entry.kind == EntryKind::Hardlink {
            let target = strip_components(&entry.link, self.strip)
                .filter(|t| !self.track_links() || self.passed_files.contains(*t));
            match target {
                Some(t) => e.link = t.to_owned(),
                None => {
                    self.failures += 1;
                    (self.report)(&Error::UnsafeEntry {
                        path: e.path,
                        reason: format!(
                            "hard link target {:?} is not extracted (select it too)",
                            entry.link
                        ),
                    });
                    return Ok(());
                }
            }
        }
        if entry.kind == EntryKind::File && self.track_links() {
            self.passed_files.insert(e.path.clone());
        }
        self.passing = true;
        self.entries += 1;
        (self.on_entry)(entry);
        self.inner.entry(&e)
    }

    fn data(&mut self, bytes: &[u8]) -> Result<()> {
        if self.passing {
            self.inner.data(bytes)
        } else {
            Ok(())
        }
    }

    fn finish(&mut self) -> Result<()> {
        self.inner.finish()
    }
}

/// Writes the data of every file to `out`, one after another (tar's `-O`);
/// directories and links write nothing.
pub struct ToWriter<W: Write> {
    out: W,
}

impl<W: Write> ToWriter<W> {
    /// Write file data to `out`.
    pub fn new(out: W) -> ToWriter<W> {
        ToWriter { out }
    }
}

impl<W: Write> Sink for ToWriter<W> {
    fn entry(&mut self, _: &Entry) -> Result<()> {
        Ok(())
    }
    fn data(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|source| Error::io("standard output", source))
    }
    fn finish(&mut self) -> Result<()> {
        self.out
            .flush()
            .map_err(|source| Error::io("standard output", source))
    }
}

/// Keeps nothing, but remembers the symbolic links, so that `verify` can
/// name the ones extraction would refuse ([`LinkRules::refused`]).
#[derive(Default)]
pub struct LinkRules {
    links: Vec<(String, String)>,
}

impl LinkRules {
    /// A sink that checks nothing until [`LinkRules::refused`].
    pub fn new() -> LinkRules {
        LinkRules::default()
    }

    /// The links extraction would skip, with the reason, in archive order.
    pub fn refused(&self, allow_absolute: bool) -> Result<Vec<(String, String)>> {
        let links: Vec<(&str, &str)> = self
            .links
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        Ok(crate::archive::symlinks::refused(&links, allow_absolute)?
            .into_iter()
            .map(|(p, r)| (p.to_owned(), r))
            .collect())
    }
}

impl Sink for LinkRules {
    fn entry(&mut self, entry: &Entry) -> Result<()> {
        if entry.kind == EntryKind::Symlink {
            self.links.push((entry.path.clone(), entry.link.clone()));
        }
        Ok(())
    }
    fn data(&mut self, _: &[u8]) -> Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Passes to the sink behind it only the entries named in `wanted` (from
/// [`crate::container::index::RangeReader::wanted`]); the other files of a block are
/// decoded with the block (their data is checked) but not written.
pub struct RangeFilter<'a> {
    inner: &'a mut dyn Sink,
    wanted: HashSet<String>,
    passing: bool,
    passed: u64,
}

impl<'a> RangeFilter<'a> {
    /// Filter what reaches `inner` by `wanted`.
    pub fn new(inner: &'a mut dyn Sink, wanted: HashSet<String>) -> RangeFilter<'a> {
        RangeFilter {
            inner,
            wanted,
            passing: false,
            passed: 0,
        }
    }

    /// Entries passed on.
    pub fn passed(&self) -> u64 {
        self.passed
    }
}

impl Sink for RangeFilter<'_> {
    fn start(&mut self) -> Result<()> {
        self.inner.start()
    }
    fn wants(&mut self, entry: &Entry) -> bool {
        self.wanted.contains(&entry.path) && self.inner.wants(entry)
    }
    fn entry(&mut self, entry: &Entry) -> Result<()> {
        self.passing = self.wanted.contains(&entry.path);
        if !self.passing {
            return Ok(());
        }
        self.passed += 1;
        self.inner.entry(entry)
    }
    fn data(&mut self, bytes: &[u8]) -> Result<()> {
        if self.passing {
            self.inner.data(bytes)
        } else {
            Ok(())
        }
    }
    fn finish(&mut self) -> Result<()> {
        self.inner.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip() {
        assert_eq!(strip_components("a/b/c", 0), Some("a/b/c"));
        assert_eq!(strip_components("a/b/c", 1), Some("b/c"));
        assert_eq!(strip_components("a/b/c", 2), Some("c"));
        assert_eq!(strip_components("a/b/c", 3), None);
        assert_eq!(strip_components("a", 1), None);
    }

    #[test]
    fn names_select_themselves_and_what_is_below() {
        let mut m = Members::new(&["tree/a".into(), "./x/".into(), "none".into()], false).unwrap();
        assert!(m.selects("tree/a"));
        assert!(m.selects("tree/a/b"));
        assert!(!m.selects("tree/ab"));
        assert!(!m.selects("tree"));
        assert!(m.selects("x"));
        assert_eq!(m.unmatched(), ["none"]);
    }

    #[test]
    fn wildcards_are_anchored_and_cross_slashes() {
        let mut m = Members::new(&["tree/*.txt".into(), "d?r".into()], true).unwrap();
        assert!(m.selects("tree/a.txt"));
        assert!(m.selects("tree/sub/b.txt"));
        assert!(!m.selects("other/tree/a.txt"));
        assert!(m.selects("dir/inside"));
        assert!(!m.selects("tree/a.rs"));
        assert!(m.unmatched().is_empty());
    }
}
