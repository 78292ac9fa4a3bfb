n: n + 1
