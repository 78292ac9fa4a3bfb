builtins.readDir ./fixtures/absent
