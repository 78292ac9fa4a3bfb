rec {
  "${"dyn"}" = b;
  __overrides = { b = "overridden"; };
  b = "plain";
}
