let f = { __functor = _: x: x * x; }; in map f [ 1 2 3 ]
