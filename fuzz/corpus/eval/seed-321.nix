# `__overrides` in a recursive set replaces attributes (also for the attributes referring to
# them) and adds new ones.
let
  extra = { a = 10; c = 3; };
in
rec {
  __overrides = extra;
  a = 1;
  b = a + 1;
}
