//! Collecting a derivation's attributes into its environment as `derivationStrict` does:
//! values coerced as Nix coerces them (lists joined by spaces, `null` as empty, one JSON
//! document with `__structuredAttrs`), contexts gathered, and the special attributes
//! (`outputs`, `outputHash*`, `__ignoreNulls`, `__contentAddressed`) checked.
//!
//! Strings are bytes here as in the `.drv` model (`kiln_store::derivation::Derivation`): the
//! builder, arguments and environment — names and values, the `__json` document included —
//! keep bytes that are not UTF-8, as Nix 2.8 writes them. Only `system` is text in the model
//! (Nix would write a `system` that is not UTF-8 raw; kiln refuses it rather than change it,
//! since a changed value would give another `.drv` path than Nix's); the output names and
//! hashes that are text there are refused by Nix too when they are not ASCII.
use super::*;

/// The attributes of a derivation as `derivationStrict` collects them.
#[derive(Default)]
pub(super) struct CollectedAttrs {
    pub(super) env: BTreeMap<Vec<u8>, Vec<u8>>,
    pub(super) args: Vec<Vec<u8>>,
    pub(super) builder: Vec<u8>,
    pub(super) platform: String,
    pub(super) output_hash: Option<String>,
    pub(super) output_hash_algo: String,
    pub(super) ingestion: Option<ContentAddressMethod>,
    pub(super) outputs: Vec<String>,
    pub(super) context: Context,
    /// `__contentAddressed = true`: floating content-addressed outputs (kiln always has Nix's
    /// `ca-derivations` feature on).
    pub(super) content_addressed: bool,
}

/// The value of attribute `key` as text (`system`), or an error when its bytes are not UTF-8.
fn attribute_text(bytes: &[u8], key: &str, span: Span) -> EvalResult<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        error(
            format!(
                "the value of the derivation attribute '{key}' is not valid UTF-8, which kiln's derivations cannot hold"
            ),
            span,
        )
    })
}

/// `system` in a structured derivation: a string without context, as text.
fn structured_platform(ev: &Evaluator, value: &Value, span: Span) -> EvalResult<String> {
    let s = ev.force_string(value, span)?;
    if !s.context().is_empty() {
        // The message Nix gives for a string with context where none is allowed.
        force_string_no_context(ev, value, span)?;
    }
    attribute_text(s.as_bytes(), "system", span)
}

pub(super) const ENV_COERCION: CoerceMode = CoerceMode {
    more: true,
    copy_to_store: true,
};

pub(super) fn collect_attrs(
    ev: &Evaluator,
    attrs: &Attrs,
    drv_name: &str,
    span: Span,
) -> EvalResult<CollectedAttrs> {
    let structured = match attrs.get(sym!("__structuredAttrs")) {
        Some(v) => ev.force_bool(v, span)?,
        None => false,
    };
    let ignore_nulls = match attrs.get(sym!("__ignoreNulls")) {
        Some(v) => ev.force_bool(v, span)?,
        None => false,
    };
    let mut collected = CollectedAttrs {
        outputs: vec!["out".to_owned()],
        ..CollectedAttrs::default()
    };
    let mut json_entries: Vec<(&[u8], Vec<u8>)> = Vec::new();
    for (symbol, value) in attrs.iter() {
        let name = symbol.as_bytes();
        // A name that is not UTF-8 is none of the special ones: it is only an environment
        // variable (or a member of `__json`), whose name keeps its bytes.
        let key = std::str::from_utf8(name).unwrap_or("");
        if key == "__ignoreNulls" {
            continue;
        }
        let step = (|| -> EvalResult<()> {
            if ignore_nulls && matches!(ev.force(value, span)?, Value::Null) {
                return Ok(());
            }
            match key {
                "__contentAddressed" => {
                    collected.content_addressed = ev.force_bool(value, span)?;
                }
                "__impure" => {
                    if ev.force_bool(value, span)? {
                        return Err(error(
                            "experimental Nix feature 'impure-derivations' is disabled",
                            span,
                        ));
                    }
                }
                "args" => {
                    for item in ev.force_list(value, span)?.iter() {
                        let s = ev.coerce_to_string(item, span, ENV_COERCION)?;
                        collected.context.extend(s.context().iter().cloned());
                        collected.args.push(s.as_bytes().to_vec());
                    }
                }
                _ if structured => {
                    if key == "__structuredAttrs" {
                        return Ok(());
                    }
                    // The `.drv` holds what Nix 2.8 writes (its path is computed from it).
                    let (json, context) =
                        ev.to_json_as(value, span, crate::print::JsonEscapes::Nix28)?;
                    collected.context.extend(context);
                    json_entries.push((name, json));
                    match key {
                        "builder" => {
                            let s = ev.force_string(value, span)?;
                            collected.context.extend(s.context().iter().cloned());
                            collected.builder = s.as_bytes().to_vec();
                        }
                        "system" => collected.platform = structured_platform(ev, value, span)?,
                        "outputHash" => {
                            collected.output_hash = Some(force_string_no_context(ev, value, span)?)
                        }
                        "outputHashAlgo" => {
                            collected.output_hash_algo = force_string_no_context(ev, value, span)?
                        }
                        "outputHashMode" => {
                            let mode = force_string_no_context(ev, value, span)?;
                            collected.set_hash_mode(&mode, span)?;
                        }
                        "outputs" => {
                            let mut names = Vec::new();
                            for item in ev.force_list(value, span)?.iter() {
                                names.push(force_string_no_context(ev, item, span)?);
                            }
                            collected.set_outputs(names, span)?;
                        }
                        _ => {}
                    }
                }
                _ => {
                    let s = ev.coerce_to_string(value, span, ENV_COERCION)?;
                    collected.context.extend(s.context().iter().cloned());
                    let bytes = s.as_bytes();
                    // The attributes read as text below reach store path names and hashes,
                    // where Nix too refuses what is not ASCII; lossy text fails there alike.
                    let text = || String::from_utf8_lossy(bytes).into_owned();
                    match key {
                        "builder" => collected.builder = bytes.to_vec(),
                        "system" => collected.platform = attribute_text(bytes, key, span)?,
                        "outputHash" => collected.output_hash = Some(text()),
                        "outputHashAlgo" => collected.output_hash_algo = text(),
                        "outputHashMode" => collected.set_hash_mode(&text(), span)?,
                        "outputs" => {
                            let names = text()
                                .split([' ', '\t', '\n', '\r'])
                                .filter(|s| !s.is_empty())
                                .map(str::to_owned)
                                .collect();
                            collected.set_outputs(names, span)?;
                        }
                        _ => {}
                    }
                    collected.env.insert(name.to_vec(), bytes.to_vec());
                }
            }
            Ok(())
        })();
        step.map_err(|e| {
            e.add_trace(
                format!("while evaluating the attribute '{symbol}' of the derivation '{drv_name}'"),
                Some(span),
            )
        })?;
    }
    if structured {
        let mut json = vec![b'{'];
        for (index, (key, value)) in json_entries.iter().enumerate() {
            if index > 0 {
                json.push(b',');
            }
            crate::print::json_string_as(key, &mut json, crate::print::JsonEscapes::Nix28);
            json.push(b':');
            json.extend_from_slice(value);
        }
        json.push(b'}');
        collected.env.insert(b"__json".to_vec(), json);
    }
    Ok(collected)
}

impl CollectedAttrs {
    fn set_hash_mode(&mut self, mode: &str, span: Span) -> EvalResult<()> {
        self.ingestion = Some(match mode {
            "recursive" => ContentAddressMethod::Recursive,
            "flat" => ContentAddressMethod::Flat,
            other => {
                return Err(error(
                    format!("invalid value '{other}' for 'outputHashMode' attribute"),
                    span,
                ))
            }
        });
        Ok(())
    }

    fn set_outputs(&mut self, names: Vec<String>, span: Span) -> EvalResult<()> {
        let mut seen = BTreeSet::new();
        for name in &names {
            if !seen.insert(name.as_str()) {
                return Err(error(format!("duplicate derivation output '{name}'"), span));
            }
            // `drvPath` would collide with the attribute of that name (Nix 2.8 returned a set
            // holding it twice; current Nix refuses it).
            if name == "drv" || name == "drvPath" {
                return Err(error(
                    format!("invalid derivation output name '{name}'"),
                    span,
                ));
            }
        }
        if names.is_empty() {
            return Err(error(
                "derivation cannot have an empty set of outputs",
                span,
            ));
        }
        self.outputs = names;
        Ok(())
    }
}
