builtins.fromJSON "[1.0, 0.5, -2.5e3, 1e-3, 12345678901.5]"
