builtins.fromJSON "[0, -1, 1e2, 1.5E-1, 9223372036854775807]"
