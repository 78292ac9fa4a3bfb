map builtins.isFunction [ toString map throw abort import baseNameOf dirOf isNull removeAttrs derivation placeholder scopedImport ]
