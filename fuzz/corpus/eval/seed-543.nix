let f = x: let y = x * 2; in y + 1; in f 5
