# What stays unevaluated when printing without --strict: Nix shows `<CODE>` for thunks (and
# for functions in lazy positions, which it keeps as thunks), values for constants.
let
  f = x: x;
  called = f 1;
in
{
  int = 1;
  float = 1.5;
  string = "s";
  bool = true;
  null = null;
  sum = 1 + 1;
  negative = -1;
  lambda = x: x;
  pattern = { a, b ? 2, ... }@args: a;
  alias = f;
  list = [ 1 (1 + 1) (x: x) ];
  empty = { };
  nested = { inner = 1; };
  interpolated = "a${"b"}";
  select = { a = 1; }.a;
  inherit called;
}
