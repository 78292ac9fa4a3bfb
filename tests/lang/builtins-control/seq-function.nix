builtins.seq (x: x) "ok"
