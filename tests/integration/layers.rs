//! The architecture's one-way rule (ARCHITECTURE.md): a module uses only
//! its own folder and the layers below it.

use std::path::Path;

/// Layer of a top-level module: higher layers may use lower ones.
fn layer(module: &str) -> u8 {
    match module {
        "cli" => 4,
        "handoff" => 3,
        "thread" => 2,
        "remote" | "codex" => 1,
        _ => 0, // the root helpers: error, git, repo, config, fingerprint, hooks, process, text, time, fault
    }
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn modules_use_only_their_own_folder_and_the_layers_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let mut parts = relative.components();
        let first = parts.next().unwrap().as_os_str().to_str().unwrap();
        let own = if parts.next().is_some() { first.to_owned() } else { first.trim_end_matches(".rs").to_owned() };
        let text = std::fs::read_to_string(&file).unwrap();
        for (at, _) in text.match_indices("crate::") {
            let used: String = text[at + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if used.is_empty() {
                wrong.push(format!(
                    "{}: write `use crate::<module>::...` per module, so this check can see it",
                    relative.display()
                ));
                continue;
            }
            let allowed = used == own || layer(&used) < layer(&own) || (layer(&own) == 0 && layer(&used) == 0);
            if !allowed {
                wrong.push(format!("{} uses crate::{used}", relative.display()));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "uses against the layering:\n{}", wrong.join("\n"));
}
