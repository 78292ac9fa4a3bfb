let
  fetched = derivation { name = "fetched"; system = "x86_64-linux"; builder = "/bin/sh"; outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = "1dkghwldkb0z7pr6ilrknlzq1xgacxyh00zb5cflljkvbgy4vh64"; };
in
derivation { name = "uses-fetched"; system = "x86_64-linux"; builder = "/bin/sh"; src = fetched; }
