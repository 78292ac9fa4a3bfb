let s = {
  alpha = 1;
    beta = 2;
}; in [ (builtins.unsafeGetAttrPos "beta" s) (builtins.unsafeGetAttrPos "gamma" s) ]
