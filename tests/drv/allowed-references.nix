let
  dep = derivation { name = "dep"; system = "x86_64-linux"; builder = "/bin/sh"; };
in
derivation {
  name = "refs-checked"; system = "x86_64-linux"; builder = "/bin/sh";
  allowedReferences = [ "out" dep ];
  disallowedRequisites = [ ];
  inherit dep;
}
