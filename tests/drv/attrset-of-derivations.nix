{
  b = derivation { name = "b"; system = "x86_64-linux"; builder = "/bin/sh"; };
  a = derivation { name = "a"; system = "x86_64-linux"; builder = "/bin/sh"; };
  notADerivation = "ignored";
}
