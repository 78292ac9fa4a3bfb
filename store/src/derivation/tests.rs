//! Golden tests: `.drv` files and `nix show-derivation` output written by Nix 2.8 (store dir
//! `/nix/store`) for `testdata/a.nix`-like expressions: multiple outputs with escapes, a flat
//! sha1 fixed-output derivation, a recursive sha256 one with an input, and a derivation using
//! all of them plus a source file.
use std::collections::BTreeMap;

use super::*;

const FILES: &[(&str, &str)] = &[
    (
        "68wrhm9wg7bxl0w0d8swqm05mn0sfabd-base.drv",
        include_str!("testdata/68wrhm9wg7bxl0w0d8swqm05mn0sfabd-base.drv"),
    ),
    (
        "91a6w2cfk86gmaz4clmqnpdp6m9x9cch-fo.drv",
        include_str!("testdata/91a6w2cfk86gmaz4clmqnpdp6m9x9cch-fo.drv"),
    ),
    (
        "9w1zk9x9p81n5dkkmg2cnbk1l2ik2xqb-fo2.drv",
        include_str!("testdata/9w1zk9x9p81n5dkkmg2cnbk1l2ik2xqb-fo2.drv"),
    ),
    (
        "iqwqcmg4h7zz1flvfnz06svpxjzi7zik-top.drv",
        include_str!("testdata/iqwqcmg4h7zz1flvfnz06svpxjzi7zik-top.drv"),
    ),
];

fn nix_dir() -> StoreDir {
    StoreDir::new("/nix/store")
}

fn parsed() -> BTreeMap<StorePath, Derivation> {
    let dir = nix_dir();
    FILES
        .iter()
        .map(|(base, text)| {
            let path = StorePath::from_base_name(base).unwrap();
            let drv = Derivation::from_drv_file(&dir, &path, text).unwrap();
            (path, drv)
        })
        .collect()
}

#[test]
fn aterm_round_trips_byte_for_byte() {
    let dir = nix_dir();
    let drvs = parsed();
    for (base, text) in FILES {
        let drv = &drvs[&StorePath::from_base_name(base).unwrap()];
        assert_eq!(drv.to_aterm(&dir), *text, "{base}");
    }
}

#[test]
fn drv_paths_match() {
    let dir = nix_dir();
    for (path, drv) in parsed() {
        let aterm = drv.to_aterm(&dir);
        assert_eq!(drv.drv_path(&dir, &aterm).unwrap(), path);
    }
}

#[test]
fn output_paths_are_recomputed() {
    let dir = nix_dir();
    let drvs = parsed();
    let mut cache = DrvHashCache::new();
    for (path, original) in &drvs {
        let mut drv = original.clone();
        for output in drv.outputs.values_mut() {
            output.path = None;
        }
        for (name, _) in original.outputs.iter() {
            drv.env.insert(name.clone(), String::new());
        }
        let mut load = |p: &StorePath| Ok(drvs[p].clone());
        for input in drv.input_drvs.keys() {
            cache.hash_of_path(&dir, input, &mut load).unwrap();
        }
        drv.fill_output_paths(&dir, &mut |p| cache.get(p).cloned())
            .unwrap();
        assert_eq!(&drv, original, "{path}");
    }
    assert_eq!(cache.len(), 3);
}

#[test]
fn fixed_output_hash_modulo_uses_fixed_fingerprint() {
    let dir = nix_dir();
    let drvs = parsed();
    let fo = &drvs[&StorePath::from_base_name(FILES[1].0).unwrap()];
    let hash = fo
        .hash_modulo(&dir, false, &mut |_| unreachable!())
        .unwrap();
    let expected = Hash::sha256(
        b"fixed:out:sha1:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c:/nix/store/7d3rgbk804knp5b64vv4bjqv5kz5f3ii-fo",
    );
    assert_eq!(
        hash,
        DrvHashModulo::FixedOutput(BTreeMap::from([("out".to_owned(), expected)]))
    );
}

#[test]
fn show_derivation_json_matches() {
    let dir = nix_dir();
    let drvs = parsed();
    let expected: serde_json::Value =
        serde_json::from_str(include_str!("testdata/show-derivation.json")).unwrap();
    let mut actual = serde_json::Map::new();
    for base in [FILES[1].0, FILES[3].0] {
        let path = StorePath::from_base_name(base).unwrap();
        actual.insert(dir.print(&path), drvs[&path].to_json(&dir));
    }
    let actual = serde_json::Value::Object(actual);
    assert_eq!(
        serde_json::to_string_pretty(&actual).unwrap(),
        serde_json::to_string_pretty(&expected).unwrap()
    );
}

#[test]
fn parse_errors_are_reported() {
    let dir = nix_dir();
    assert!(matches!(
        Derivation::from_aterm(&dir, "x", "Derive([],[],[],\"a\""),
        Err(DerivationError::Parse { .. })
    ));
}

#[test]
fn floating_and_deferred_outputs_round_trip() {
    let dir = nix_dir();
    let text =
        "Derive([(\"dev\",\"\",\"\",\"\"),(\"out\",\"\",\"r:sha256\",\"\")],[],[],\"\",\"\",[],[])";
    let drv = Derivation::from_aterm(&dir, "x", text).expect("a floating output parses");
    let out = &drv.outputs["out"];
    assert_eq!(
        out.floating,
        Some(FloatingOutput {
            method: ContentAddressMethod::Recursive,
            algo: crate::hash::HashAlgo::Sha256
        })
    );
    assert!(out.path.is_none() && out.fixed.is_none());
    let dev = &drv.outputs["dev"];
    assert!(dev.path.is_none() && dev.fixed.is_none() && dev.floating.is_none());
    assert_eq!(drv.to_aterm(&dir), text);
    assert!(!drv.is_floating() && !drv.is_deferred());
}
