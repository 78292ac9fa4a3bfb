map builtins.isAttrs [ { } { a = 1; } [ ] null ]
