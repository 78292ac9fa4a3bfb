map builtins.isString [ "" "a" ./x 1 { __toString = _: "s"; } ]
