//! Issue 12 point 7: the layering rules, checked on the source itself.
//!
//! `cardano` is the foundation and may name nothing else in the crate;
//! `protocol` (the x402 wire format) may lean on `cardano` only; and nothing
//! in the service core may name the buyer side (`buyer`, `demo`), which exists
//! only with the `buyer` feature. A test module may use the buyer to build
//! fixtures (it is compiled only with the feature), so test code is exempt
//! from that last rule and only that one.
//!
//! The scanner reads every `crate::` path in the code (comments removed),
//! including grouped imports (`use crate::{cardano, chain::Tip}`) and inline
//! paths (`crate::chain::Tip::default()`), and `super::<module>` paths that
//! climb to the crate root from a module's `mod.rs`.

use std::path::{Path, PathBuf};

/// Top-level modules of the crate, as `src/lib.rs` declares them.
fn crate_modules() -> Vec<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').trim().to_owned())
        .collect()
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The code of a file without `//` comments (doc comments included).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Files that are test-only modules: declared as `mod name;` right under a
/// `#[cfg(...)]` that names `test` (e.g. `#[cfg(all(test, feature = "buyer"))]`).
fn test_only_files() -> &'static [PathBuf] {
    static FILES: std::sync::OnceLock<Vec<PathBuf>> = std::sync::OnceLock::new();
    FILES.get_or_init(find_test_only_files)
}

fn find_test_only_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for parent in rust_files(&src()) {
        let code = code_of(&std::fs::read_to_string(&parent).unwrap());
        let lines: Vec<&str> = code
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        for w in lines.windows(2) {
            let gated = w[0].starts_with("#[cfg(") && w[0].contains("test");
            let Some(name) = w[1]
                .strip_prefix("mod ")
                .or_else(|| w[1].strip_prefix("pub mod "))
                .and_then(|r| r.strip_suffix(';'))
            else {
                continue;
            };
            if !gated {
                continue;
            }
            let stem = parent.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let dir = parent.parent().unwrap_or(Path::new(""));
            let base = if matches!(stem, "mod" | "lib" | "main") {
                dir.to_path_buf()
            } else {
                dir.join(stem)
            };
            out.push(base.join(format!("{}.rs", name.trim())));
            out.push(base.join(name.trim()).join("mod.rs"));
        }
    }
    out
}

/// Split a file into (production code, test code): test code starts at the
/// first `#[cfg(test)]` / `#[cfg(all(test, ...))]`; a file that is a
/// test-only module is all test code.
fn split_tests(path: &Path, code: &str) -> (String, String) {
    if test_only_files().iter().any(|t| t == path) {
        return (String::new(), code.to_owned());
    }
    let at = ["#[cfg(test)]", "#[cfg(all(test"]
        .iter()
        .filter_map(|m| code.find(m))
        .min();
    match at {
        Some(i) => (code[..i].to_owned(), code[i..].to_owned()),
        None => (code.to_owned(), String::new()),
    }
}

/// Every top-level crate module that `code` names: `crate::m`, each member of
/// `crate::{m1, m2::x, ...}`, and `super::m` when `super` is the crate root.
fn named_modules(code: &str, super_is_root: bool, known: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let mut heads = vec!["crate::"];
    if super_is_root {
        heads.push("super::");
    }
    for head in heads {
        let mut rest = code;
        while let Some(i) = rest.find(head) {
            let before = rest[..i].chars().next_back();
            rest = &rest[i + head.len()..];
            // `x402_crate::` or `my_super::` are other paths.
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let tail = rest.trim_start();
            if let Some(group) = tail.strip_prefix('{') {
                // Members at depth 0 of the group.
                let mut depth = 0usize;
                let mut member = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            found.push(first_ident(&member));
                            member.clear();
                            continue;
                        }
                        _ => {}
                    }
                    if depth == 0 {
                        member.push(c);
                    }
                }
                found.push(first_ident(&member));
            } else {
                found.push(first_ident(tail));
            }
        }
    }
    found.retain(|m| known.contains(m));
    found.sort();
    found.dedup();
    found
}

fn first_ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The rule broken by each file of `dir`: it names a module outside `allowed`
/// (production and test code), or outside `allowed` + `test_allowed` (test code).
fn violations(dir: &Path, allowed: &[&str], test_allowed: &[&str]) -> Vec<String> {
    let known = crate_modules();
    let mut out = Vec::new();
    for path in rust_files(dir) {
        let text = std::fs::read_to_string(&path).unwrap();
        let (prod, test) = split_tests(&path, &code_of(&text));
        let super_is_root = path.parent() == Some(src().as_path())
            || (path.file_name().is_some_and(|n| n == "mod.rs")
                && path.parent().and_then(Path::parent) == Some(src().as_path()));
        for (code, extra) in [(&prod, &[][..]), (&test, test_allowed)] {
            for m in named_modules(code, super_is_root, &known) {
                if !allowed.contains(&m.as_str()) && !extra.contains(&m.as_str()) {
                    let rel = path.strip_prefix(src()).unwrap_or(&path).display();
                    out.push(format!("src/{rel} uses crate::{m}"));
                }
            }
        }
    }
    out
}

#[test]
fn the_scanner_sees_every_form_of_path() {
    let known: Vec<String> = ["app", "cardano", "chain", "config", "protocol", "store"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let code = code_of(
        "use crate::chain::UtxoState;\n\
         use crate::{cardano::Value, config::{self, Settings},\n store};\n\
         fn f() { let _ = crate::app::App::build; }\n\
         // crate::protocol is only mentioned in a comment\n\
         use x402_crate::protocol;\n",
    );
    assert_eq!(
        named_modules(&code, false, &known),
        ["app", "cardano", "chain", "config", "store"]
    );
    assert_eq!(
        named_modules("use super::chain::Tip;", true, &known),
        ["chain"]
    );
    assert!(named_modules("use super::chain::Tip;", false, &known).is_empty());
    let (prod, test) = split_tests(
        Path::new("x.rs"),
        "use crate::cardano;\n#[cfg(all(test, feature = \"buyer\"))]\nmod tests { use crate::buyer; }",
    );
    assert_eq!(prod, "use crate::cardano;\n");
    assert!(test.contains("crate::buyer"));
    // Test-only module files, whatever their name.
    let tests_only = test_only_files().to_vec();
    for f in ["cardano/plutus/tests.rs", "scheme/masumi/vectors.rs"] {
        assert!(tests_only.contains(&src().join(f)), "{f}: {tests_only:?}");
    }
    assert!(!tests_only.contains(&src().join("cardano/tx.rs")));
}

/// `cardano` names no other module of the crate (its tests may use the buyer
/// to build and sign fixtures).
#[test]
fn cardano_imports_nothing_from_the_rest_of_the_crate() {
    let v = violations(&src().join("cardano"), &["cardano"], &["buyer"]);
    assert!(v.is_empty(), "layering broken:\n{}", v.join("\n"));
}

/// `protocol` (x402 wire types) leans on `cardano` and on nothing above it.
#[test]
fn protocol_imports_only_cardano() {
    let v = violations(&src().join("protocol"), &["protocol", "cardano"], &[]);
    assert!(v.is_empty(), "layering broken:\n{}", v.join("\n"));
}

/// The service core never names the buyer side, so it builds without the
/// `buyer` feature; only test modules may use it for fixtures.
#[test]
fn the_service_core_does_not_depend_on_the_buyer() {
    let known = crate_modules();
    assert!(known.iter().any(|m| m == "buyer") && known.iter().any(|m| m == "demo"));
    let mut v = Vec::new();
    for m in &known {
        if m == "buyer" || m == "demo" {
            continue;
        }
        let dir = src().join(m);
        let others: Vec<&str> = known
            .iter()
            .map(String::as_str)
            .filter(|k| *k != "buyer" && *k != "demo")
            .collect();
        if dir.is_dir() {
            v.extend(violations(&dir, &others, &["buyer"]));
        }
        let file = src().join(format!("{m}.rs"));
        if file.is_file() {
            let (prod, _) = split_tests(&file, &code_of(&std::fs::read_to_string(&file).unwrap()));
            for n in named_modules(&prod, true, &known) {
                if n == "buyer" || n == "demo" {
                    v.push(format!("src/{m}.rs uses crate::{n}"));
                }
            }
        }
    }
    assert!(
        v.is_empty(),
        "the core names the buyer side:\n{}",
        v.join("\n")
    );
}
