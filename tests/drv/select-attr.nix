{
  wanted = derivation { name = "wanted"; system = "x86_64-linux"; builder = "/bin/sh"; };
  other = derivation { name = "other"; system = "x86_64-linux"; builder = "/bin/sh"; };
}
