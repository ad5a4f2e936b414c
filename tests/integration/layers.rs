//! The architecture's rules (ARCHITECTURE.md), read from the code's own
//! paths (`use crate::…`, `super::…`, a folder's `mod.rs` naming its own
//! modules), so they cannot go stale:
//!
//! - a module uses only its own folder and the layers below it
//!   (`cli` → `handoff` → `thread` → `worktree`, `remote`, `codex` → the root);
//! - no module uses, directly or through others, a module that uses it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layer of a top-level module: higher layers may use lower ones, and
/// different modules of one layer may not use each other.
fn layer(module: &str) -> u8 {
    match module {
        "cli" => 4,
        "handoff" => 3,
        "thread" => 2,
        "worktree" | "remote" | "codex" => 1,
        _ => 0, // the root helpers: error, git, repo, objects, config, fingerprint, hooks, process, text, time, fault, …
    }
}

/// Every module of `src/`, by path (`thread::store`), with its file.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, src: &Path, out: &mut BTreeMap<String, PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, src, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(src).unwrap().with_extension("");
                let mut parts: Vec<String> =
                    relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                    parts.pop();
                }
                out.insert(parts.join("::"), path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, src, &mut out);
    out
}

/// The code of a file that counts: no comments, no unit tests.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines().map(|line| line.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths a path tree starting at `text[at..]` names (`a::{b, c::d}` is `a::b` and `a::c::d`).
fn paths_at(text: &[char], mut at: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix;
    loop {
        let start = at;
        while at < text.len() && is_ident(text[at]) {
            at += 1;
        }
        if at > start {
            path.push(text[start..at].iter().collect());
        }
        if text.get(at) == Some(&':') && text.get(at + 1) == Some(&':') {
            at += 2;
            if text.get(at) == Some(&'{') {
                at += 1;
                loop {
                    while at < text.len() && (text[at].is_whitespace() || text[at] == ',') {
                        at += 1;
                    }
                    if at >= text.len() || text[at] == '}' {
                        return at + 1;
                    }
                    at = paths_at(text, at, path.clone(), out);
                    if at >= text.len() {
                        return at;
                    }
                }
            }
            continue;
        }
        out.push(path);
        return at;
    }
}

/// The modules `module` (whose code is `code`) uses, each resolved to the
/// longest module path it names.
fn uses(module: &str, code: &str, all: &BTreeMap<String, PathBuf>, is_folder: bool) -> BTreeSet<String> {
    let own: Vec<String> = if module.is_empty() { Vec::new() } else { module.split("::").map(str::to_owned).collect() };
    let children: BTreeSet<String> = all
        .keys()
        .filter_map(|m| {
            let rest = if module.is_empty() { Some(m.as_str()) } else { m.strip_prefix(&format!("{module}::")) };
            rest.filter(|r| !r.is_empty() && !r.contains("::")).map(str::to_owned)
        })
        .collect();
    let text: Vec<char> = code.chars().collect();
    let mut found = BTreeSet::new();
    let mut at = 0;
    while at < text.len() {
        if !is_ident(text[at]) || (at > 0 && (is_ident(text[at - 1]) || text[at - 1] == ':')) {
            at += 1;
            continue;
        }
        let mut paths = Vec::new();
        let end = paths_at(&text, at, Vec::new(), &mut paths);
        for path in paths {
            let resolved: Option<Vec<String>> = match path.first().map(String::as_str) {
                Some("crate") => Some(path[1..].to_vec()),
                // `self` is this module, each `super` one module up, whatever the file layout.
                Some("self" | "super") if path.len() > 1 => {
                    let ups = path.iter().take_while(|p| *p == "super").count();
                    let skip = if ups == 0 { 1 } else { ups };
                    let base = own.len().checked_sub(ups).map(|n| &own[..n]);
                    base.map(|base| base.iter().chain(&path[skip..]).cloned().collect())
                }
                // A folder's own modules, named from its mod.rs (or lib.rs).
                Some(first) if is_folder && path.len() > 1 && children.contains(first) => {
                    Some(own.iter().chain(&path).cloned().collect())
                }
                _ => None,
            };
            let Some(resolved) = resolved else { continue };
            let target = (1..=resolved.len()).rev().map(|n| resolved[..n].join("::")).find(|m| all.contains_key(m));
            if let Some(target) = target.filter(|t| t != module) {
                found.insert(target);
            }
        }
        at = end.max(at + 1);
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let all = modules(&src);
    all.iter()
        .map(|(module, file)| {
            let is_folder = matches!(file.file_stem().and_then(|s| s.to_str()), Some("mod" | "lib" | "main"));
            let code = code_of(&std::fs::read_to_string(file).unwrap());
            (module.clone(), uses(module, &code, &all, is_folder))
        })
        .filter(|(module, _)| !module.is_empty() && module != "main")
        .collect()
}

#[test]
fn modules_use_only_their_own_folder_and_the_layers_below() {
    let mut wrong = Vec::new();
    for (module, used) in graph() {
        let own = module.split("::").next().unwrap();
        for target in used {
            let theirs = target.split("::").next().unwrap();
            let allowed = theirs == own || layer(theirs) < layer(own) || (layer(own) == 0 && layer(theirs) == 0);
            if !allowed {
                wrong.push(format!("{module} uses {target}"));
            }
        }
    }
    assert!(wrong.is_empty(), "uses against the layering:\n{}", wrong.join("\n"));
}

#[test]
fn no_module_uses_a_module_that_uses_it() {
    let graph = graph();
    // Depth-first search; a module met again while still on the path closes a circle.
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        circles: &mut Vec<String>,
    ) {
        if let Some(at) = path.iter().position(|m| m == module) {
            circles.push(format!("{} -> {module}", path[at..].join(" -> ")));
            return;
        }
        if !done.insert(module.to_owned()) {
            return;
        }
        path.push(module.to_owned());
        for next in graph.get(module).into_iter().flatten() {
            visit(next, graph, path, done, circles);
        }
        path.pop();
    }
    let mut circles = Vec::new();
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done, &mut circles);
    }
    assert!(circles.is_empty(), "modules that use each other, directly or through others:\n{}", circles.join("\n"));
}

#[test]
fn the_worktree_knows_nothing_of_threads_hosts_or_codex() {
    let wrong: Vec<String> = graph()
        .into_iter()
        .filter(|(module, _)| module.starts_with("worktree"))
        .flat_map(|(module, used)| {
            used.into_iter()
                .filter(|t| ["thread", "handoff", "remote", "codex", "cli"].contains(&t.split("::").next().unwrap()))
                .map(move |t| format!("{module} uses {t}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_reader_sees_a_circle_when_there_is_one() {
    // The check above must not pass by reading nothing: this code has one.
    let code = "use crate::b::{self, c::D};\nfn f() { super::e::g(); super::super::f::h(); self::y::z(); }";
    let all: BTreeMap<String, PathBuf> =
        ["a::x", "a::x::y", "b", "b::c", "a::e", "f"].iter().map(|m| (m.to_string(), PathBuf::new())).collect();
    let found = uses("a::x", code, &all, false);
    assert_eq!(found, ["b", "b::c", "a::e", "f", "a::x::y"].iter().map(|s| s.to_string()).collect());
    assert!(graph().get("handoff::to_host").is_some_and(|used| used.contains("thread::store")));
}
