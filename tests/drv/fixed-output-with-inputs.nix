let
  tool = derivation { name = "tool"; system = "x86_64-linux"; builder = "/bin/sh"; };
  a = derivation { name = "fetch-a"; system = "x86_64-linux"; builder = "/bin/sh"; inherit tool; outputHash = "sha256-xMBN/Ft7SkodK+sDAH1n6vWAP7Uz02jyPR+s2SiHb7Y="; };
in
derivation { name = "after-fetch"; system = "x86_64-linux"; builder = "/bin/sh"; inherit a; }
