builtins.isAttrs (throw "forced")
