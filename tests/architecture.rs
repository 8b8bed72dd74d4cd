//! The pipeline's layering, checked on the sources: every import points down the pipeline
//! (base types ← graph ← grad ← kernels ← compile ← runtime ← function ← the rest), the kernels
//! know only tensors, dtypes and the op enums, and no two modules import each other.
//!
//! An import is any `crate::…` path in the code (comments and strings are skipped), with
//! `use crate::{a, b::c}` groups expanded, and any `super::` path that climbs out of a
//! top-level module; a name re-exported by `lib.rs` counts as an import of the module it comes
//! from. Unit tests (`#[cfg(test)]` modules) may use the whole crate and are not checked.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The pipeline, first to last, with what each module may import (as path prefixes): the table
/// of the book's chapter "Architecture".
const PIPELINE: &[(&str, &[&[&str]])] = &[
    ("error", &[]),
    ("dtype", &[&["error"]]),
    ("shape", &[&["error"], &["dtype"]]),
    ("tensor", &[&["error"], &["dtype"], &["shape"]]),
    ("graph", BASE),
    (
        "grad",
        &[&["error"], &["dtype"], &["shape"], &["tensor"], &["graph"]],
    ),
    // The kernels know the base types and the op enums (with the node type they carry) only.
    (
        "kernels",
        &[
            &["error"],
            &["dtype"],
            &["shape"],
            &["tensor"],
            &["graph", "op"],
            &["graph", "Type"],
        ],
    ),
    (
        "compile",
        &[
            &["error"],
            &["dtype"],
            &["shape"],
            &["tensor"],
            &["graph"],
            &["kernels"],
        ],
    ),
    (
        "runtime",
        &[
            &["error"],
            &["dtype"],
            &["shape"],
            &["tensor"],
            &["graph"],
            &["kernels"],
            &["compile"],
        ],
    ),
    (
        "function",
        &[
            &["error"],
            &["dtype"],
            &["shape"],
            &["tensor"],
            &["graph"],
            &["grad"],
            &["kernels"],
            &["compile"],
            &["runtime"],
        ],
    ),
];

const BASE: &[&[&str]] = &[&["error"], &["dtype"], &["shape"], &["tensor"]];

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a source file: `src/compile/plan/mod.rs` is `["compile", "plan"]`.
fn module_of(path: &Path, src: &Path) -> Vec<String> {
    let rel = path.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The code of a file without its comments and the contents of its string and char literals.
fn code_only(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            '/' if b.get(i + 1) == Some(&'/') => {
                while i < b.len() && b[i] != '\n' {
                    i += 1;
                }
            }
            '/' if b.get(i + 1) == Some(&'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == '*' && b[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            '"' => {
                i += 1;
                while i < b.len() && b[i] != '"' {
                    i += if b[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            // A char literal ('x', '\n', '\''), not a lifetime ('a).
            '\'' if b.get(i + 2) == Some(&'\'') || b.get(i + 1) == Some(&'\\') => {
                i += if b.get(i + 1) == Some(&'\\') { 4 } else { 3 };
                while i < b.len() && b[i - 1] != '\'' {
                    i += 1;
                }
                out.push_str("' '");
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The paths of a use tree starting at `s[*i]` (after `crate::`), each as its segments.
fn use_tree(s: &[char], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && s[*i].is_whitespace() {
            *i += 1;
        }
    };
    let mut path = prefix;
    loop {
        skip_ws(i);
        if *i < s.len() && s[*i] == '{' {
            *i += 1;
            loop {
                skip_ws(i);
                if *i >= s.len() || s[*i] == '}' {
                    *i += 1;
                    return;
                }
                use_tree(s, i, path.clone(), out);
                skip_ws(i);
                if *i < s.len() && s[*i] == ',' {
                    *i += 1;
                }
            }
        }
        let start = *i;
        while *i < s.len() && ident_char(s[*i]) {
            *i += 1;
        }
        if *i == start {
            // `*` or the end of the path.
            if *i < s.len() && s[*i] == '*' {
                *i += 1;
            }
            out.push(path);
            return;
        }
        let seg: String = s[start..*i].iter().collect();
        if seg != "self" {
            path.push(seg);
        }
        skip_ws(i);
        if s.get(*i) == Some(&':') && s.get(*i + 1) == Some(&':') {
            *i += 2;
            continue;
        }
        // `as` renames, generics and the rest end the path.
        while *i < s.len() && !matches!(s[*i], ',' | '}' | ';' | ')' | '\n') {
            if s[*i] == '{' || s[*i] == '(' || s[*i] == '<' {
                break;
            }
            *i += 1;
        }
        out.push(path);
        return;
    }
}

/// Every path that a file at module path `module` imports from the crate, as segments from the
/// crate root.
fn imports(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let s: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let boundary = i == 0 || !ident_char(s[i - 1]) && s[i - 1] != ':';
        let rest = |w: &str| s[i..].iter().take(w.len()).copied().eq(w.chars());
        if boundary && rest("crate::") {
            i += "crate::".len();
            use_tree(&s, &mut i, Vec::new(), &mut out);
            continue;
        }
        if boundary && rest("super::") {
            let mut base = module.to_vec();
            while s[i..].iter().take(7).copied().eq("super::".chars()) {
                base.pop();
                i += 7;
            }
            // Only climbing out of the top-level module matters here.
            if base.is_empty() {
                use_tree(&s, &mut i, Vec::new(), &mut out);
            }
            continue;
        }
        i += 1;
    }
    out
}

/// The top-level module each name `lib.rs` re-exports comes from (`Expr` → `graph`).
fn reexports(src: &Path) -> BTreeMap<String, String> {
    let lib = code_only(&fs::read_to_string(src.join("lib.rs")).expect("lib.rs"));
    let mut map = BTreeMap::new();
    for stmt in lib.split(';') {
        let Some(tree) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let s: Vec<char> = tree.chars().collect();
        let mut paths = Vec::new();
        use_tree(&s, &mut 0, Vec::new(), &mut paths);
        for p in paths {
            let from = if p[0] == "crate" { &p[1] } else { &p[0] };
            if let Some(name) = p.last() {
                map.insert(name.clone(), from.clone());
            }
        }
    }
    map
}

struct Import {
    file: String,
    from: String,
    path: Vec<String>,
}

/// Every import between top-level modules, with the file it is in.
fn all_imports() -> Vec<Import> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let names = reexports(&src);
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| module_of(f, &src).first().cloned())
        .collect();
    let mut out = Vec::new();
    for file in files {
        let module = module_of(&file, &src);
        let Some(from) = module.first().cloned() else {
            continue; // lib.rs re-exports everything by design.
        };
        let text = fs::read_to_string(&file).expect("a source file");
        // A file's unit tests (a `#[cfg(test)] mod` at its end, by convention) may use the
        // whole crate.
        let code = code_only(&text);
        let code = code.split("#[cfg(test)]\nmod ").next().unwrap_or_default();
        for mut path in imports(code, &module) {
            // A glob of the crate root (`use crate::*`) imports everything.
            let Some(first) = path.first() else {
                path.push("*".into());
                out.push(Import {
                    file: file.strip_prefix(&src).unwrap().display().to_string(),
                    from: from.clone(),
                    path,
                });
                continue;
            };
            // A re-exported name stands for the module it comes from; the prelude (not a
            // module of its own file) ranks after the pipeline, as the rest of `lib.rs` does.
            if !modules.contains(first)
                && let Some(m) = names.get(first)
            {
                path.insert(0, m.clone());
            }
            out.push(Import {
                file: file.strip_prefix(&src).unwrap().display().to_string(),
                from: from.clone(),
                path,
            });
        }
    }
    out
}

/// What module `from` may import, if it is a module of the pipeline.
fn allowed(from: &str) -> Option<&'static [&'static [&'static str]]> {
    PIPELINE.iter().find(|(m, _)| *m == from).map(|(_, a)| *a)
}

#[test]
fn every_import_points_down_the_pipeline() {
    let imports = all_imports();
    assert!(
        imports.len() > 100,
        "the scan found only {} imports",
        imports.len()
    );
    let mut wrong = Vec::new();
    for imp in &imports {
        if imp.path[0] == imp.from {
            continue;
        }
        // The modules built on the pipeline (random, models, ...) may use all of it; their
        // cycles are the other test's.
        let Some(allowed) = allowed(&imp.from) else {
            continue;
        };
        let ok = allowed
            .iter()
            .any(|a| imp.path.len() >= a.len() && imp.path[..a.len()] == **a);
        if !ok {
            wrong.push(format!(
                "{}: {} imports {}, which is not among what it may use ({})",
                imp.file,
                imp.from,
                imp.path.join("::"),
                allowed
                    .iter()
                    .map(|a| a.join("::"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_two_modules_import_each_other() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for imp in all_imports() {
        if imp.path[0] != imp.from {
            edges
                .entry(imp.from.clone())
                .or_default()
                .insert(imp.path[0].clone());
        }
    }
    // A cycle shows as a module reachable from itself.
    let mut cycles = Vec::new();
    for start in edges.keys() {
        let mut stack: Vec<Vec<String>> = vec![vec![start.clone()]];
        let mut seen = BTreeSet::new();
        while let Some(path) = stack.pop() {
            let last = path.last().expect("paths are not empty").clone();
            for next in edges.get(&last).into_iter().flatten() {
                if next == start {
                    let mut cycle = path.clone();
                    cycle.push(next.clone());
                    cycles.push(cycle.join(" -> "));
                } else if seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push(p);
                }
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_scan_sees_grouped_and_climbing_imports() {
    let code = code_only(
        "use crate::{graph::{op::Op, Type}, kernels};\n\
         // use crate::runtime::Executor;\n\
         let s = \"crate::compile\";\n\
         let x = super::super::function::eval(a, b);",
    );
    let got = imports(&code, &["kernels".into(), "fused".into()]);
    let want: Vec<Vec<String>> = [
        vec!["graph", "op", "Op"],
        vec!["graph", "Type"],
        vec!["kernels"],
        vec!["function", "eval"],
    ]
    .iter()
    .map(|p| p.iter().map(|s| s.to_string()).collect())
    .collect();
    assert_eq!(got, want);
}
