let
  tool = derivation { name = "tool"; system = "x86_64-linux"; builder = "/bin/sh"; };
  fetched = derivation {
    name = "fetched"; system = "x86_64-linux"; builder = "/bin/sh";
    inherit tool;
    outputHashMode = "recursive";
    outputHash = "sha256-gK49VPCuWpX1o0o0DGCZqGnSDT38e8fm0y5IbsJXVOA=";
  };
  patched = derivation { name = "patched"; system = "x86_64-linux"; builder = "/bin/sh"; src = fetched; outputs = [ "out" "man" ]; };
in
derivation { name = "final"; system = "x86_64-linux"; builder = "/bin/sh"; inputs = [ patched.man "${patched}/bin" ]; }
