derivation { name = "fixed-b16"; system = "x86_64-linux"; builder = "/bin/sh"; outputHashAlgo = "sha256"; outputHash = "c4c04dfc5b7b4a4a1d2beb03007d67eaf5803fb533d368f23d1facd928876fb6"; }
