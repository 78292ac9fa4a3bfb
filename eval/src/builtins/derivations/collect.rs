//! Collecting a derivation's attributes into its environment as `derivationStrict` does:
//! values coerced as Nix coerces them (lists joined by spaces, `null` as empty, one JSON
//! document with `__structuredAttrs`), contexts gathered, and the special attributes
//! (`outputs`, `outputHash*`, `__ignoreNulls`, `__contentAddressed`) checked.
//!
//! kiln's `.drv` model (`kiln_store::derivation::Derivation`) holds text, while a Nix string
//! is bytes: a value that is not UTF-8 is refused here rather than changed, since a changed
//! value would give another `.drv` path than Nix's.
use super::*;

/// The attributes of a derivation as `derivationStrict` collects them.
#[derive(Default)]
pub(super) struct CollectedAttrs {
    pub(super) env: BTreeMap<String, String>,
    pub(super) args: Vec<String>,
    pub(super) builder: String,
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

/// The value of attribute `key` as text, or an error when its bytes are not UTF-8.
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
    let mut json_entries: Vec<(String, Vec<u8>)> = Vec::new();
    for (key, value) in attrs.iter() {
        // A name that is not UTF-8 has bytes other than its text.
        if key.as_bytes() != key.as_str().as_bytes() {
            return Err(error(
                format!("the derivation attribute name '{key}' is not valid UTF-8, which kiln's derivations cannot hold"),
                span,
            ));
        }
        let key = key.as_str();
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
                        collected
                            .args
                            .push(attribute_text(s.as_bytes(), key, span)?);
                    }
                }
                _ if structured => {
                    if key == "__structuredAttrs" {
                        return Ok(());
                    }
                    let (json, context) = ev.to_json_with_context(value, span)?;
                    collected.context.extend(context);
                    json_entries.push((key.to_owned(), json));
                    match key {
                        "builder" => {
                            let s = ev.force_string(value, span)?;
                            collected.context.extend(s.context().iter().cloned());
                            collected.builder = attribute_text(s.as_bytes(), key, span)?;
                        }
                        "system" => collected.platform = force_string_no_context(ev, value, span)?,
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
                    let text = attribute_text(s.as_bytes(), key, span)?;
                    match key {
                        "builder" => collected.builder = text.clone(),
                        "system" => collected.platform = text.clone(),
                        "outputHash" => collected.output_hash = Some(text.clone()),
                        "outputHashAlgo" => collected.output_hash_algo = text.clone(),
                        "outputHashMode" => collected.set_hash_mode(&text, span)?,
                        "outputs" => {
                            let names = text
                                .split([' ', '\t', '\n', '\r'])
                                .filter(|s| !s.is_empty())
                                .map(str::to_owned)
                                .collect();
                            collected.set_outputs(names, span)?;
                        }
                        _ => {}
                    }
                    collected.env.insert(key.to_owned(), text);
                }
            }
            Ok(())
        })();
        step.map_err(|e| {
            e.add_trace(
                format!("while evaluating the attribute '{key}' of the derivation '{drv_name}'"),
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
            crate::print::json_string(key.as_bytes(), &mut json);
            json.push(b':');
            json.extend_from_slice(value);
        }
        json.push(b'}');
        let json = attribute_text(&json, "__json", span)?;
        collected.env.insert("__json".to_owned(), json);
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
