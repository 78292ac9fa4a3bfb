# A store text holds the string's bytes: its path depends on them.
builtins.toFile "binary" (builtins.readFile ./fixtures/binary.dat)
