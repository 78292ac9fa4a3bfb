builtins.fromTOML "[[item]]\nname = \"a\"\n[[item]]\nname = \"b\"\n"
