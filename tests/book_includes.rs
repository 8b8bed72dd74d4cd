//! The book cannot rot: every `{{#include PATH:ANCHOR}}` in `book/src/*.md` names a file that
//! exists and holds a non-empty `ANCHOR: name` ... `ANCHOR_END: name` region, every Rust block is
//! such an include (so all book code is compiled as an example), and every chapter is listed in
//! `SUMMARY.md`.

use std::fs;
use std::path::{Path, PathBuf};

fn book_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src")
}

fn chapters() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = fs::read_dir(book_src())
        .expect("book/src exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read_to_string(&p).expect("readable chapter"))
        })
        .collect();
    out.sort();
    out
}

/// `(path, anchor)` of every `{{#include ...}}` in `text`.
fn includes(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{#include ") {
        let after = &rest[start + "{{#include ".len()..];
        let end = after.find("}}").expect("an include is closed by }}");
        let spec = after[..end].trim();
        out.push(match spec.split_once(':') {
            Some((path, anchor)) => (path.to_string(), Some(anchor.to_string())),
            None => (spec.to_string(), None),
        });
        rest = &after[end..];
    }
    out
}

/// Line index of the marker `KIND: name` (the name must match exactly, not as a prefix).
fn marker(source: &str, kind: &str, name: &str) -> Option<usize> {
    source.lines().position(|line| {
        line.split_once(&format!("{kind}:"))
            .is_some_and(|(_, rest)| rest.trim() == name)
    })
}

#[test]
fn every_include_names_an_existing_anchor() {
    let mut count = 0;
    for (chapter, text) in chapters() {
        for (path, anchor) in includes(&text) {
            count += 1;
            let file = book_src().join(&path);
            let source = fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{chapter}: cannot read {path}: {e}"));
            let Some(anchor) = anchor else { continue };
            assert!(
                anchor
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-'),
                "{chapter}: {path}:{anchor} is not a named anchor"
            );
            let begin = marker(&source, "ANCHOR", &anchor)
                .unwrap_or_else(|| panic!("{chapter}: {path} has no `ANCHOR: {anchor}`"));
            let end = marker(&source, "ANCHOR_END", &anchor)
                .unwrap_or_else(|| panic!("{chapter}: {path} has no `ANCHOR_END: {anchor}`"));
            assert!(
                end > begin + 1,
                "{chapter}: {path}:{anchor} is empty or ends before it begins"
            );
        }
    }
    assert!(count > 0, "the book includes no code");
}

#[test]
fn every_rust_block_is_an_include() {
    for (chapter, text) in chapters() {
        let mut in_rust = None;
        for (i, line) in text.lines().enumerate() {
            let t = line.trim();
            match (&in_rust, t.strip_prefix("```")) {
                (None, Some(lang)) => {
                    in_rust = Some(lang.is_empty() || lang.starts_with("rust"));
                }
                (Some(_), Some(_)) => in_rust = None,
                (Some(true), None) => assert!(
                    t.starts_with("{{#include ") || t.is_empty(),
                    "{chapter}:{}: Rust code must be included from an example, found {t:?}",
                    i + 1
                ),
                _ => {}
            }
        }
        assert!(in_rust.is_none(), "{chapter}: unclosed code block");
    }
}

#[test]
fn every_chapter_is_in_the_summary() {
    let summary = fs::read_to_string(book_src().join("SUMMARY.md")).expect("SUMMARY.md");
    for (chapter, _) in chapters() {
        if chapter != "SUMMARY.md" {
            assert!(
                summary.contains(&format!("({chapter})")),
                "{chapter} is not linked from SUMMARY.md"
            );
        }
    }
    for line in summary.lines() {
        if let Some((_, link)) = line.split_once("](") {
            let target = link.trim_end_matches(')');
            assert!(
                book_src().join(target).exists(),
                "SUMMARY.md links to missing {target}"
            );
        }
    }
}
