builtins.fromTOML "a = 1\nb = \"str\"\nc = [1, 2]\nd = true\n[table]\nx = 1.5\n[table.sub]\ny = \"z\"\n"
