let f = { name, version }: name; in f { name = "x"; }
