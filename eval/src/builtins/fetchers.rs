//! The evaluation-time fetchers `builtins.fetchurl` and `builtins.fetchTarball`, with Nix's
//! semantics: the argument is a URL string or `{ url; sha256 ? ...; name ? ...; }` (any other
//! attribute is refused); `fetchurl` names its path after the URL's last component and adds the
//! file flat, `fetchTarball` names it `source` and adds the tarball's single top-level
//! directory recursively (its sha256 is a NAR hash). With `sha256` the pinned path is used as
//! is when the store already holds it; without one the fetch is refused in pure evaluation mode,
//! with Nix's wording. A download with another hash fails with Nix's "hash mismatch in file
//! downloaded from ..." text, at the call's position.
//!
//! The download itself is not the evaluator's business (docs/architecture.md, "Crates"): it goes through the
//! [`EvalFetcher`](crate::store_access::EvalFetcher) in `EvalOptions::fetcher`, which the command
//! line builds over the local store and the builder's fetch and unpack code.
use kiln_lang::Span;
use kiln_store::hash::{Hash, HashAlgo, HashEncoding};

use super::strings::force_string_no_context;
use super::{arg, Builtin};
use crate::error::{EvalError, EvalResult};
use crate::eval::Evaluator;
use crate::store_access::{FetchKind, FetchSpec};
use crate::value::{Context, ContextElem, NixString, Value};

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "fetchurl",
        arity: 1,
        top_level: false,
        doc: "Download a file into the store at evaluation time: \"url\" or { url, sha256?, name? }.",
        func: fetchurl,
    },
    Builtin {
        name: "fetchTarball",
        arity: 1,
        top_level: false,
        doc: "Download and unpack a tarball into the store at evaluation time: \"url\" or { url, sha256?, name ? \"source\" }.",
        func: fetch_tarball,
    },
];

fn fetchurl(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    fetch(ev, arg(args, 0), span, FetchKind::File)
}

fn fetch_tarball(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    fetch(ev, arg(args, 0), span, FetchKind::Tarball)
}

/// The builtin's name as Nix's messages quote it.
fn builtin_name(kind: FetchKind) -> &'static str {
    match kind {
        FetchKind::File => "fetchurl",
        FetchKind::Tarball => "fetchTarball",
    }
}

/// The arguments of one call.
struct FetchArgs {
    url: String,
    name: String,
    expected: Option<Hash>,
}

fn read_args(
    ev: &Evaluator,
    argument: &Value,
    span: Span,
    kind: FetchKind,
) -> EvalResult<FetchArgs> {
    let who = builtin_name(kind);
    let mut url = None;
    let mut name = match kind {
        FetchKind::File => String::new(),
        FetchKind::Tarball => "source".to_owned(),
    };
    let mut expected = None;
    let forced = ev.force(argument, span)?;
    if let Value::Attrs(attrs) = &forced {
        for (key, value) in attrs.iter() {
            let at = attrs.position_of(key).unwrap_or(span);
            match key.as_str() {
                "url" => url = Some(force_string_no_context(ev, value, at)?),
                "name" => name = force_string_no_context(ev, value, at)?,
                "sha256" => {
                    let text = force_string_no_context(ev, value, at)?;
                    let hash = Hash::parse_allow_empty(&text, Some(HashAlgo::Sha256))
                        .map_err(|e| EvalError::eval(e.to_string()).at(at))?;
                    if text.is_empty() {
                        ev.report(crate::EvalMessage::Warning(format!(
                            "found empty hash, assuming '{}'",
                            hash.to_sri()
                        )));
                    }
                    expected = Some(hash);
                }
                other => {
                    return Err(EvalError::eval(format!(
                        "unsupported argument '{other}' to '{who}'"
                    ))
                    .at(at))
                }
            }
        }
    } else {
        url = Some(force_string_no_context(ev, &forced, span)?);
    }
    let Some(mut url) = url else {
        return Err(EvalError::eval("'url' argument required").at(span));
    };
    if kind == FetchKind::Tarball {
        url = resolve_pseudo_url(&url);
    }
    if name.is_empty() {
        name = base_name_of(&url).to_owned();
    }
    Ok(FetchArgs {
        url,
        name,
        expected,
    })
}

/// `channel:NAME` stands for the channel's expression tarball, as in Nix.
fn resolve_pseudo_url(url: &str) -> String {
    match url.strip_prefix("channel:") {
        Some(channel) => format!("https://nixos.org/channels/{channel}/nixexprs.tar.xz"),
        None => url.to_owned(),
    }
}

/// The last component of a URL or path, ignoring one trailing slash (Nix's `baseNameOf`).
fn base_name_of(text: &str) -> &str {
    let trimmed = match text.strip_suffix('/') {
        Some(rest) if !rest.is_empty() => rest,
        _ => text,
    };
    match trimmed.rfind('/') {
        Some(slash) => &trimmed[slash + 1..],
        None => trimmed,
    }
}

/// `sha256:<nixbase32>`, as Nix prints hashes in a mismatch.
fn nix32(hash: &Hash) -> String {
    hash.encode(HashEncoding::Nixbase32, true)
}

fn fetch(ev: &Evaluator, argument: &Value, span: Span, kind: FetchKind) -> EvalResult<Value> {
    let who = builtin_name(kind);
    let args = read_args(ev, argument, span, kind)?;
    if ev.options().pure && args.expected.is_none() {
        return Err(EvalError::eval(format!(
            "in pure evaluation mode, '{who}' requires a 'sha256' argument"
        ))
        .at(span));
    }
    let Some(fetcher) = ev.options().fetcher.clone() else {
        return Err(EvalError::eval(format!(
            "'builtins.{who}' cannot download '{}': this evaluation has no store to download into",
            args.url
        ))
        .at(span));
    };
    let expected_sha256 = args.expected.map(|hash| {
        let mut digest = [0u8; 32];
        // `parse_allow_empty` with sha256 gives 32-byte digests.
        digest.copy_from_slice(hash.as_bytes());
        digest
    });
    let spec = FetchSpec {
        kind,
        url: &args.url,
        name: &args.name,
        expected_sha256,
    };
    let fetched = fetcher
        .fetch(&spec)
        .map_err(|e| EvalError::eval(e.to_string()).at(span))?;
    if let Some(expected) = &args.expected {
        let got = Hash::from_digest(HashAlgo::Sha256, &fetched.sha256)
            .ok_or_else(|| EvalError::eval("a sha256 hash has 32 bytes").at(span))?;
        if &got != expected {
            return Err(EvalError::eval(format!(
                "hash mismatch in file downloaded from '{}':\n  specified: {}\n  got:       {}",
                args.url,
                nix32(expected),
                nix32(&got)
            ))
            .at(span));
        }
    }
    let path = ev.store().store_dir().print(&fetched.path);
    let context = Context::from([ContextElem::Plain(path.clone())]);
    Ok(Value::String(NixString::with_context(path, context)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_last_url_component() {
        assert_eq!(base_name_of("http://127.0.0.1:1/a/b.tar.gz"), "b.tar.gz");
        assert_eq!(base_name_of("http://127.0.0.1:1/a/dir/"), "dir");
        assert_eq!(base_name_of("plain"), "plain");
        assert_eq!(base_name_of("/"), "");
    }

    #[test]
    fn channel_urls_name_the_channel_tarball() {
        assert_eq!(
            resolve_pseudo_url("channel:nixos-22.05"),
            "https://nixos.org/channels/nixos-22.05/nixexprs.tar.xz"
        );
        assert_eq!(resolve_pseudo_url("http://x/y"), "http://x/y");
    }
}
