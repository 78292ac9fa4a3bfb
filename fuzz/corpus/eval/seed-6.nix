(x: 42) (throw "unused arg")
