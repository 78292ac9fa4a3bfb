{
  lib = derivation { name = "lib"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "out" "dev" ]; };
}
