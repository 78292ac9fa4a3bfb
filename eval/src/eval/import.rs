//! Reading and importing files: parsing a file or string into IR (parse results cached per
//! file), reading through `EvalIo` or the texts the store was given, `import`,
//! `scopedImport` and `<name>` lookups in the search path.
use super::*;
use std::os::unix::ffi::OsStringExt;

impl Evaluator {
    /// Registers source text and lowers it.
    pub(crate) fn parse_source(
        &self,
        text: &str,
        name: String,
        path: Option<PathBuf>,
        base_dir: &Path,
        outer_names: &[Symbol],
    ) -> EvalResult<ExprRef> {
        let display_name = match &path {
            Some(p) => p.display().to_string(),
            None => "(string)".to_string(),
        };
        let text = &*kiln_lang::source::normalise_line_endings(text);
        let file = self.sources.borrow_mut().add(name, path, Rc::from(text));
        let home = self
            .io()
            .get_env("HOME")
            .map(|home| PathBuf::from(std::ffi::OsString::from_vec(home)));
        let cx = LowerContext {
            file,
            display_name: &display_name,
            base_dir,
            home_dir: home.as_deref(),
            globals: &self.globals,
            outer_names,
        };
        Ok(kiln_lang::parse_and_lower(text, &cx)?)
    }

    /// Reads and lowers a file (a directory means its `default.nix`).
    pub(crate) fn parse_file(&self, path: &Path, outer_names: &[Symbol]) -> EvalResult<ExprRef> {
        let path = self.resolve_import_path(path);
        let bytes = self.read_file_bytes(&path).map_err(EvalError::eval)?;
        let base_dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let text = match std::str::from_utf8(&bytes) {
            Ok(t) => t.to_string(),
            Err(_) => {
                let file = self
                    .sources
                    .borrow_mut()
                    .add_file(&path, Rc::from(String::from_utf8_lossy(&bytes).as_ref()));
                return Err(kiln_lang::check_utf8(&bytes, file)
                    .err()
                    .map(EvalError::from)
                    .unwrap_or_else(|| EvalError::eval("invalid UTF-8 in source")));
            }
        };
        self.parse_source(
            &text,
            path.display().to_string(),
            Some(path.clone()),
            &base_dir,
            outer_names,
        )
    }

    /// Whether `path` exists (on disk, or as a text this evaluation put in the store).
    pub(super) fn file_exists(&self, path: &Path) -> bool {
        self.io().file_type(path).is_some() || self.store_text(path).is_some()
    }

    /// A file's contents: a text this evaluation put in the store (`builtins.toFile`, kept by
    /// stores that do not write) or the file itself.
    pub(crate) fn read_file_bytes(&self, path: &Path) -> Result<Vec<u8>, String> {
        match self.store_text(path) {
            Some(text) => Ok(text),
            None => self.io().read_file(path),
        }
    }

    /// The store's copy of `path` when it is a store path the store holds in memory.
    pub(super) fn store_text(&self, path: &Path) -> Option<Vec<u8>> {
        let store = &self.options.store;
        let (store_path, rest) = store.store_dir().parse_prefix(path.to_str()?).ok()?;
        if !rest.is_empty() {
            return None;
        }
        store.read_store_file(&store_path)
    }

    pub(super) fn resolve_import_path(&self, path: &Path) -> PathBuf {
        if self.io().file_type(path) == Some(FileType::Directory) {
            path.join("default.nix")
        } else {
            path.to_path_buf()
        }
    }

    /// `import path`: evaluates a file once and caches its value.
    pub fn import_file(&self, path: &Path, span: Span) -> EvalResult<Value> {
        let resolved = self.resolve_import_path(path);
        if let Some(v) = self.import_cache.borrow().get(&resolved) {
            return self.force(v, span);
        }
        if !self.file_exists(&resolved) {
            return Err(EvalError::eval(format!(
                "getting status of '{}': No such file or directory",
                resolved.display()
            ))
            .at(span));
        }
        let expr = self.parse_file(&resolved, &[]).map_err(|e| e.at(span))?;
        let value = Value::Thunk(Thunk::suspended(expr, self.root_env.clone()));
        self.import_cache
            .borrow_mut()
            .insert(resolved, value.clone());
        self.force(&value, span)
    }

    /// `scopedImport scope path`: evaluates a file with the attributes of `scope` bound around
    /// it (shadowing builtins); not cached, as in Nix.
    pub fn scoped_import(&self, scope: &Attrs, path: &Path, span: Span) -> EvalResult<Value> {
        let resolved = self.resolve_import_path(path);
        if !self.file_exists(&resolved) {
            return Err(EvalError::eval(format!(
                "getting status of '{}': No such file or directory",
                resolved.display()
            ))
            .at(span));
        }
        let names: Vec<Symbol> = scope.names().collect();
        let expr = self.parse_file(&resolved, &names).map_err(|e| e.at(span))?;
        let env = Env::new(scope.values().cloned().collect(), None);
        self.eval(&expr, &env)
    }

    /// Evaluates Nix source that belongs to kiln itself (e.g. a builtin written in Nix, like
    /// `derivation`), with `name` shown in positions.
    pub fn eval_internal_source(&self, name: &str, source: &str) -> EvalResult<Value> {
        let expr = self.parse_source(source, format!("«{name}»"), None, Path::new("/"), &[])?;
        self.eval(&expr, &self.root_env)
    }

    /// Resolves `<name/rest>` against the search path.
    pub fn find_in_search_path(&self, name: &str, span: Span) -> EvalResult<Value> {
        crate::find_in(self, &self.options.search_path, name, span)
    }
}
