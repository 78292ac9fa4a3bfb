let inner = { __functor = _: x: x + 1; }; outer = { __functor = _: inner; }; in outer 1
