map builtins.typeOf [ 1 1.5 "s" true null [ ] { } (x: x) builtins.map ./p (builtins.add 1) ]
