//! The book cannot rot: every `{{#include PATH:ANCHOR}}` in `book/src/*.md` names a file that
//! exists and holds a non-empty `ANCHOR: name` ... `ANCHOR_END: name` region, every Rust block is
//! such an include (so all book code is compiled as an example), every chapter is listed in
//! `SUMMARY.md`, every relative link and image names a file that exists (and a heading that
//! exists, for `chapter.md#heading`), and every picture in `book/src/images` is shown.
//! (mdBook itself builds a book with a missing include or a dead link; `.ci/run` builds it too.)

use std::collections::BTreeSet;
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
fn every_included_example_is_in_a_code_block() {
    // Outside a fence, mdBook renders the included Rust as prose (and `<T>` as an HTML tag).
    for (chapter, text) in chapters() {
        for line in outside_fences(&text) {
            assert!(
                !(line.trim_start().starts_with("{{#include ") && line.contains(".rs")),
                "{chapter}: {line} is outside a ```rust block"
            );
        }
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

/// The lines outside fenced code blocks: where a `#` starts a heading.
fn outside_fences(text: &str) -> impl Iterator<Item = &str> {
    let mut fenced = false;
    text.lines().filter(move |line| {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            return false;
        }
        !fenced
    })
}

/// The text outside fenced code blocks and inline code spans, where a `](` is a link.
fn prose(text: &str) -> String {
    let mut out = String::new();
    for line in outside_fences(text) {
        // Drop `code` spans: split on backticks and keep the even pieces.
        for (i, piece) in line.split('`').enumerate() {
            if i % 2 == 0 {
                out.push_str(piece);
            }
        }
        out.push('\n');
    }
    out
}

/// The targets of the inline links and images `[text](target)` / `![alt](target)` in `text`.
fn links(text: &str) -> Vec<String> {
    let prose = prose(text);
    let mut out = Vec::new();
    let mut rest = prose.as_str();
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let end = after.find(')').unwrap_or(after.len());
        // `[text](target "title")`: the target is the first word.
        let target = after[..end].split_whitespace().next().unwrap_or("");
        out.push(target.trim_matches(['<', '>']).to_string());
        rest = &after[end..];
    }
    out
}

/// The ids mdBook gives a chapter's headings: lower case, spaces to `-`, only letters, digits,
/// `-` and `_` kept; a repeated id gets `-1`, `-2`, ...
fn heading_ids(text: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for line in outside_fences(text) {
        let Some(title) = line.strip_prefix('#') else {
            continue;
        };
        let title = title.trim_start_matches('#').trim();
        let id: String = title
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect::<String>()
            .to_lowercase();
        let mut unique = id.clone();
        let mut n = 0;
        while ids.contains(&unique) {
            n += 1;
            unique = format!("{id}-{n}");
        }
        ids.insert(unique);
    }
    ids
}

/// What is wrong with the link `target` of `chapter`, if anything.
fn dead_link(chapter: &str, target: &str) -> Option<String> {
    if target.is_empty() {
        return Some("an empty link".into());
    }
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (path, anchor) = match target.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (target, None),
    };
    let file = if path.is_empty() {
        book_src().join(chapter)
    } else {
        book_src().join(path)
    };
    if !file.is_file() {
        return Some(format!("{} does not exist", file.display()));
    }
    let anchor = anchor.filter(|_| file.extension().is_some_and(|e| e == "md"))?;
    let ids = heading_ids(&fs::read_to_string(&file).expect("readable chapter"));
    (!ids.contains(anchor)).then(|| format!("no heading has the id #{anchor} (ids: {ids:?})"))
}

#[test]
fn every_relative_link_and_image_exists() {
    let mut count = 0;
    let mut dead = Vec::new();
    for (chapter, text) in chapters() {
        for target in links(&text) {
            count += 1;
            if let Some(why) = dead_link(&chapter, &target) {
                dead.push(format!("{chapter}: ({target}): {why}"));
            }
        }
    }
    assert!(
        dead.is_empty(),
        "dead links in the book:\n{}",
        dead.join("\n")
    );
    assert!(
        count > 10,
        "only {count} links found: is the parser broken?"
    );
}

#[test]
fn every_picture_is_shown() {
    let shown: BTreeSet<String> = chapters()
        .iter()
        .flat_map(|(_, text)| links(text))
        .filter_map(|t| t.strip_prefix("images/").map(str::to_string))
        .collect();
    for entry in fs::read_dir(book_src().join("images")).expect("book/src/images") {
        let name = entry.expect("readable entry").file_name();
        let name = name.to_string_lossy();
        assert!(
            shown.contains(name.as_ref()),
            "book/src/images/{name} is in no chapter: show it or delete it \
             (book/pictures.sh makes only the pictures the book shows)"
        );
    }
}

#[test]
fn the_link_checker_finds_what_it_should() {
    let text = "# A title\n## Un-broadcasting: `x`\n## A title\n\
                see [a](b.md), ![p](images/p.png \"t\") and `[not](a-link)`\n\
                ```text\n[not](either)\n```\n";
    assert_eq!(links(text), ["b.md", "images/p.png"]);
    let ids = heading_ids(text);
    assert!(
        ids.contains("a-title") && ids.contains("a-title-1"),
        "{ids:?}"
    );
    assert!(ids.contains("un-broadcasting-x"), "{ids:?}");
    assert!(dead_link("rbm.md", "gradients.md#un-broadcasting").is_none());
    assert!(dead_link("rbm.md", "gradients.md#no-such-heading").is_some());
    assert!(dead_link("rbm.md", "no-such-chapter.md").is_some());
    assert!(dead_link("rbm.md", "images/no-such-picture.png").is_some());
    assert!(dead_link("rbm.md", "#training-on-the-digits").is_none());
    assert!(dead_link("rbm.md", "https://example.org/x").is_none());
}
