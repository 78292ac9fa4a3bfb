//! Golden tests: `.drv` files and `nix show-derivation` output written by Nix 2.8 (store dir
//! `/nix/store`) for `testdata/a.nix`-like expressions: multiple outputs with escapes, a flat
//! sha1 fixed-output derivation, a recursive sha256 one with an input, and a derivation using
//! all of them plus a source file.
use std::collections::BTreeMap;

use super::*;

const FILES: &[(&str, &[u8])] = &[
    (
        "68wrhm9wg7bxl0w0d8swqm05mn0sfabd-base.drv",
        include_bytes!("testdata/68wrhm9wg7bxl0w0d8swqm05mn0sfabd-base.drv"),
    ),
    (
        "91a6w2cfk86gmaz4clmqnpdp6m9x9cch-fo.drv",
        include_bytes!("testdata/91a6w2cfk86gmaz4clmqnpdp6m9x9cch-fo.drv"),
    ),
    (
        "9w1zk9x9p81n5dkkmg2cnbk1l2ik2xqb-fo2.drv",
        include_bytes!("testdata/9w1zk9x9p81n5dkkmg2cnbk1l2ik2xqb-fo2.drv"),
    ),
    (
        "iqwqcmg4h7zz1flvfnz06svpxjzi7zik-top.drv",
        include_bytes!("testdata/iqwqcmg4h7zz1flvfnz06svpxjzi7zik-top.drv"),
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
            drv.set_env_var(name, Vec::new());
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
    let mut shown = Vec::new();
    for base in [FILES[1].0, FILES[3].0] {
        let path = StorePath::from_base_name(base).unwrap();
        shown.push((dir.print(&path).into_bytes(), drvs[&path].to_json(&dir)));
    }
    let mut actual = Json::Object(shown).to_pretty();
    actual.push(b'\n');
    assert_eq!(
        String::from_utf8(actual).unwrap(),
        include_str!("testdata/show-derivation.json")
    );
}

#[test]
fn parse_errors_are_reported() {
    let dir = nix_dir();
    assert!(matches!(
        Derivation::from_aterm(&dir, "x", b"Derive([],[],[],\"a\""),
        Err(DerivationError::Parse { .. })
    ));
}

#[test]
fn floating_and_deferred_outputs_round_trip() {
    let dir = nix_dir();
    let text =
        "Derive([(\"dev\",\"\",\"\",\"\"),(\"out\",\"\",\"r:sha256\",\"\")],[],[],\"\",\"\",[],[])";
    let drv = Derivation::from_aterm(&dir, "x", text.as_bytes()).expect("a floating output parses");
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
    assert_eq!(drv.to_aterm(&dir), text.as_bytes());
    assert!(!drv.is_floating() && !drv.is_deferred());
}

/// `testdata/bytes.nix`, instantiated by Nix 2.8: a builder, arguments, an environment value
/// and a variable name that are not UTF-8.
const BYTES: (&str, &[u8]) = (
    "720s9f94nm79qq5qp49xhln58yd45yah-bytes.drv",
    include_bytes!("testdata/720s9f94nm79qq5qp49xhln58yd45yah-bytes.drv"),
);

#[test]
fn bytes_that_are_not_utf8_round_trip_and_hash_as_nix_does() {
    let dir = nix_dir();
    let path = StorePath::from_base_name(BYTES.0).unwrap();
    let drv = Derivation::from_drv_file(&dir, &path, BYTES.1).unwrap();
    let binary = include_bytes!("testdata/bytes.dat");
    assert_eq!(drv.builder, b"/bin/sh\xc3");
    assert_eq!(drv.args, [&b"-c"[..], b"a\xc3", binary]);
    assert_eq!(drv.env_var("value"), Some(&binary[..]));
    assert_eq!(drv.env.get(&b"name\xc3"[..]), Some(&b"x\xc3".to_vec()));
    assert_eq!(drv.to_aterm(&dir), BYTES.1);
    assert_eq!(drv.drv_path(&dir, &drv.to_aterm(&dir)).unwrap(), path);

    let mut unfilled = drv.clone();
    unfilled.outputs.values_mut().for_each(|o| o.path = None);
    unfilled.set_env_var("out", Vec::new());
    unfilled
        .fill_output_paths(&dir, &mut |_| unreachable!("no inputs"))
        .unwrap();
    assert_eq!(unfilled, drv);

    let mut shown =
        Json::Object(vec![(dir.print(&path).into_bytes(), drv.to_json(&dir))]).to_pretty();
    shown.push(b'\n');
    assert_eq!(
        shown,
        include_bytes!("testdata/show-derivation-bytes.json").as_slice()
    );
}

#[test]
fn escapes_before_any_byte_keep_that_byte() {
    let dir = nix_dir();
    let text = b"Derive([],[],[],\"x\",\"\\\xff\\q\",[\"\\n\\\"\"],[(\"\\\xc3\",\"\xe2\\\x82\")])";
    let drv = Derivation::from_aterm(&dir, "x", text).unwrap();
    assert_eq!(drv.builder, b"\xffq");
    assert_eq!(drv.args, [b"\n\"".to_vec()]);
    assert_eq!(drv.env.get(&b"\xc3"[..]), Some(&b"\xe2\x82".to_vec()));
    // Written back, only the five escaped bytes are escaped.
    assert_eq!(
        drv.to_aterm(&dir),
        b"Derive([],[],[],\"x\",\"\xffq\",[\"\\n\\\"\"],[(\"\xc3\",\"\xe2\x82\")])"
    );
}

#[test]
fn rewrite_strings_replaces_within_bytes() {
    let rewrites = BTreeMap::from([
        ("/aa".to_owned(), "/p".to_owned()),
        ("/zz".to_owned(), "/q".to_owned()),
    ]);
    assert_eq!(
        rewrite_strings(b"\xff/aa/aa\xc3/zz/a", &rewrites),
        b"\xff/p/p\xc3/q/a"
    );
}
