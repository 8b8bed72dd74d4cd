//! The file readers never panic, whatever the bytes: a deterministic mutation test of the IDX
//! reader (plain and gzip) and the safetensors reader over more than ten thousand mutants of
//! valid files: truncations at every length, flipped and replaced bytes, huge dimensions and
//! header lengths, wrong magic numbers and wrong dtype codes. Each mutant is an `Ok` (a mutation
//! that still makes a valid file) or an `Err`, never a panic, and never an allocation of what a
//! corrupt header claims.

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};

use gradus::data::idx::parse_idx;
use gradus::io::parse_tensors;
use gradus::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// An IDX file of type `code` and `dims`, its elements counting up.
fn idx(code: u8, dims: &[u32]) -> Vec<u8> {
    let size = match code {
        0x08 | 0x09 => 1,
        0x0B => 2,
        0x0C | 0x0D => 4,
        _ => 8,
    };
    let n: u32 = dims.iter().product();
    let mut out = vec![0, 0, code, dims.len() as u8];
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend((0..n as usize * size).map(|k| (k * 7 % 251) as u8));
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A safetensors file of a few tensors of every dtype gradus reads.
fn safetensors() -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("gradus-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("base.safetensors");
    let a: Tensor = ndarray::arr2(&[[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]).into();
    let b: Tensor = vec![0.5f64, -1.5].into();
    let c: Tensor = vec![3i64, 1, 4, 1].into();
    let d: Tensor = vec![true, false, true].into();
    gradus::io::save_tensors(&path, &[("a", &a), ("b", &b), ("c", &c), ("d", &d)]).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    bytes
}

/// Mutants of `base`: every truncation, then `random` random ones (flips, replacements,
/// insertions, deletions, runs of 0xff), and the `targeted` rewrites of given offsets.
fn mutants(base: &[u8], random: usize, targeted: &[(usize, &[u8])], seed: u64) -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out: Vec<Vec<u8>> = (0..base.len()).map(|n| base[..n].to_vec()).collect();
    for &(at, bytes) in targeted {
        if at + bytes.len() <= base.len() {
            let mut m = base.to_vec();
            m[at..at + bytes.len()].copy_from_slice(bytes);
            out.push(m);
        }
    }
    for _ in 0..random {
        let mut m = base.to_vec();
        for _ in 0..rng.random_range(1..4) {
            if m.is_empty() {
                break;
            }
            let at = rng.random_range(0..m.len());
            match rng.random_range(0..5) {
                0 => m[at] ^= 1 << rng.random_range(0..8),
                1 => m[at] = rng.random(),
                2 => m.insert(at, rng.random()),
                3 => {
                    m.remove(at);
                }
                _ => {
                    let end = (at + rng.random_range(1..9)).min(m.len());
                    m[at..end].fill(0xff);
                }
            }
        }
        out.push(m);
    }
    out
}

/// Run `parse` on every mutant; the number that panicked, and of those that did not, how many
/// were accepted.
fn panics(mutants: &[Vec<u8>], parse: impl Fn(&[u8]) -> bool) -> (usize, usize) {
    let (mut panicked, mut accepted) = (0, 0);
    for m in mutants {
        match catch_unwind(AssertUnwindSafe(|| parse(m))) {
            Err(_) => panicked += 1,
            Ok(true) => accepted += 1,
            Ok(false) => {}
        }
    }
    (panicked, accepted)
}

#[test]
fn ten_thousand_mutants_of_idx_files_never_panic() {
    let huge = u32::MAX.to_be_bytes();
    let big = 0x0100_0000u32.to_be_bytes();
    let targeted: Vec<(usize, &[u8])> = vec![
        (0, &[0x1f, 0x8b]),
        (0, &[1, 0]),
        (2, &[0x00]),
        (2, &[0x0a]),
        (2, &[0xff]),
        (3, &[0]),
        (3, &[255]),
        (4, &huge),
        (8, &huge),
        (4, &big),
        (12, &big),
        (4, &[0, 0, 0, 0]),
    ];
    let bases = [
        idx(0x08, &[5, 3, 2]),
        idx(0x09, &[4, 4]),
        idx(0x0B, &[6]),
        idx(0x0C, &[2, 3]),
        idx(0x0D, &[3, 2, 1]),
        idx(0x0E, &[5]),
        idx(0x08, &[]),
    ];
    let mut total = 0;
    let mut panicked = 0;
    for (k, base) in bases.iter().enumerate() {
        assert!(parse_idx(base, "base").is_ok());
        for bytes in [base.clone(), gzip(base)] {
            let ms = mutants(&bytes, 700, &targeted, k as u64);
            total += ms.len();
            panicked += panics(&ms, |m| parse_idx(m, "mutant").is_ok()).0;
        }
    }
    assert!(total >= 10_000, "only {total} mutants");
    assert_eq!(panicked, 0, "{panicked} of {total} mutants panicked");
}

#[test]
fn ten_thousand_mutants_of_a_safetensors_file_never_panic() {
    let base = safetensors();
    assert_eq!(parse_tensors("base", &base).unwrap().len(), 4);
    let header_len = u64::from_le_bytes(base[..8].try_into().unwrap()) as usize;
    // The header's dtype names and numbers, rewritten in place where they are.
    let text = String::from_utf8_lossy(&base[8..8 + header_len]).into_owned();
    let mut targeted: Vec<(usize, Vec<u8>)> = vec![
        (0, u64::MAX.to_le_bytes().to_vec()),
        (0, (1u64 << 40).to_le_bytes().to_vec()),
        (0, ((header_len + 1) as u64).to_le_bytes().to_vec()),
        (0, ((header_len - 1) as u64).to_le_bytes().to_vec()),
        (0, 0u64.to_le_bytes().to_vec()),
    ];
    for (word, with) in [
        ("F32", "F16"),
        ("F32", "I32"),
        ("F64", "U64"),
        ("I64", "F64"),
        ("BOOL", "U8\"\""),
        ("\"shape\":[2,3]", "\"shape\":[9,9]"),
        ("\"shape\":[2,3]", "\"shape\":[0,3]"),
        ("\"data_offsets\":[0,24]", "\"data_offsets\":[0,99]"),
    ] {
        if let Some(at) = text.find(word)
            && with.len() == word.len()
        {
            targeted.push((8 + at, with.as_bytes().to_vec()));
        }
    }
    let targeted: Vec<(usize, &[u8])> = targeted.iter().map(|(a, b)| (*a, &b[..])).collect();
    let ms = mutants(&base, 10_000, &targeted, 99);
    let (panicked, accepted) = panics(&ms, |m| parse_tensors("mutant", m).is_ok());
    assert!(ms.len() >= 10_000);
    assert_eq!(panicked, 0, "{panicked} of {} mutants panicked", ms.len());
    // Most mutants are refused; a few (a flipped data byte) are still valid files.
    assert!(
        accepted < ms.len() / 2,
        "{accepted} of {} accepted",
        ms.len()
    );
}
