builtins.fromJSON "{\"a\": [1, 2.5, true, null, \"s\"], \"b\": {\"c\": -4}}"
