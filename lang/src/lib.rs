//! kiln-lang: the front end. Owns source text (`SourceMap`, `Span`), parsing with rnix and
//! lowering the rnix AST into the scope-resolved IR that the evaluator runs.
