[ (builtins.typeOf builtins) (builtins.isAttrs builtins) (builtins.builtins.builtins.isInt 1) ]
