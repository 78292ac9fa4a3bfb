builtins.functionArgs { __functor = self: { a, b ? 1 }: a; }
