//! Hashing builtins: `hashString` and `hashFile` (md5, sha1, sha256, sha512, printed in
//! base 16 as Nix does), and `convertHash` from newer Nix (between base16, nix32, base64 and
//! SRI). Files are read through the evaluator's `EvalIo`.
use super::lists::required_attr;
use super::strings::force_string_no_context;
use super::{arg, Builtin};
use crate::error::{EvalError, EvalResult};
use crate::eval::Evaluator;
use crate::value::Value;
use kiln_lang::Span;
use kiln_store::hash::{Hash, HashAlgo, HashEncoding};

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "hashString",
        arity: 2,
        top_level: false,
        doc: "The base-16 hash (md5, sha1, sha256, sha512) of a string.",
        func: hash_string,
    },
    Builtin {
        name: "hashFile",
        arity: 2,
        top_level: false,
        doc: "The base-16 hash (md5, sha1, sha256, sha512) of a file's contents.",
        func: hash_file,
    },
    Builtin {
        name: "convertHash",
        arity: 1,
        top_level: false,
        doc: "Convert { hash, toHashFormat, hashAlgo ? } between base16, nix32, base64 and sri.",
        func: convert_hash,
    },
];

fn algorithm(ev: &Evaluator, value: &Value, span: Span) -> EvalResult<HashAlgo> {
    let name = force_string_no_context(ev, value, span)?;
    name.parse::<HashAlgo>()
        .map_err(|e| EvalError::eval(e.to_string()).at(span))
}

fn hash_string(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let algo = algorithm(ev, arg(args, 0), span)?;
    let text = ev.force_string(arg(args, 1), span)?;
    Ok(Value::string(Hash::digest(algo, text.as_bytes()).to_hex()))
}

fn hash_file(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let algo = algorithm(ev, arg(args, 0), span)?;
    let path = ev.coerce_to_path(arg(args, 1), span)?;
    let contents = ev
        .io()
        .read_file(&path)
        .map_err(|message| EvalError::eval(message).at(span))?;
    Ok(Value::string(Hash::digest(algo, &contents).to_hex()))
}

fn convert_hash(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let input = ev.force_attrs(arg(args, 0), span)?;
    let text = required_attr(&input, sym!("hash"), "convertHash", span)?;
    let text = force_string_no_context(ev, &text, span)?;
    let algo = match input.get(sym!("hashAlgo")) {
        Some(v) => Some(algorithm(ev, v, span)?),
        None => None,
    };
    let format = required_attr(&input, sym!("toHashFormat"), "convertHash", span)?;
    let format = force_string_no_context(ev, &format, span)?;
    let encoding = match format.as_str() {
        "base16" => HashEncoding::Base16,
        "nix32" | "base32" => HashEncoding::Nixbase32,
        "base64" => HashEncoding::Base64,
        "sri" => HashEncoding::Sri,
        other => {
            return Err(EvalError::eval(format!(
                "unknown hash format '{other}', expect 'base16', 'base32', 'base64', or 'sri'"
            ))
            .at(span))
        }
    };
    let hash = Hash::parse_any(&text, algo).map_err(|e| EvalError::eval(e.to_string()).at(span))?;
    Ok(Value::string(hash.encode(encoding, false)))
}

#[cfg(test)]
mod tests {
    use super::super::lists::run_nix;
    use super::*;

    #[test]
    fn hash_file_reads_through_eval_io() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("abc.txt");
        std::fs::write(&file, "abc").unwrap();
        let src = format!(r#"builtins.hashFile "sha1" "{}""#, file.display());
        // Same digest as nix-instantiate 2.8's hashString "sha1" "abc".
        assert_eq!(
            run_nix(&src),
            r#""a9993e364706816aba3e25717850c26c9cd0d89d""#
        );
        let missing = format!(r#"builtins.hashFile "md5" "{}/nope""#, dir.path().display());
        assert!(
            run_nix(&missing).starts_with("error: opening file"),
            "{missing}"
        );
    }

    #[test]
    fn convert_hash_changes_encodings() {
        let sha1 = "a9993e364706816aba3e25717850c26c9cd0d89d";
        let sri = run_nix(&format!(
            r#"builtins.convertHash {{ hash = "{sha1}"; hashAlgo = "sha1"; toHashFormat = "sri"; }}"#
        ));
        assert_eq!(sri, r#""sha1-qZk+NkcGgWq6PiVxeFDCbJzQ2J0=""#);
        let back = run_nix(
            r#"builtins.convertHash { hash = "sha1-qZk+NkcGgWq6PiVxeFDCbJzQ2J0="; toHashFormat = "base16"; }"#,
        );
        assert_eq!(back, format!(r#""{sha1}""#));
    }

    #[test]
    fn digests_are_lower_hex() {
        // nix-instantiate 2.8: hashString "sha1" "abc".
        assert_eq!(
            Hash::digest(HashAlgo::Sha1, b"abc").to_hex(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert!("crc32".parse::<HashAlgo>().is_err());
    }
}
