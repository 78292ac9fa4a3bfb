# A fixed-output derivation above a content-addressed one keeps its fixed path.
let
  a = derivation { name = "a"; system = "x86_64-linux"; builder = "/bin/sh"; __contentAddressed = true; };
in
derivation { name = "fo"; system = "x86_64-linux"; builder = "/bin/sh"; inherit a; outputHash = "sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="; __contentAddressed = true; }
