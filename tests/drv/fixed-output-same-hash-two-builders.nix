let
  one = derivation { name = "same"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "one" ]; outputHash = "sha256-xMBN/Ft7SkodK+sDAH1n6vWAP7Uz02jyPR+s2SiHb7Y="; };
  two = derivation { name = "same"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "two" ]; outputHash = "sha256-xMBN/Ft7SkodK+sDAH1n6vWAP7Uz02jyPR+s2SiHb7Y="; };
in
[ (derivation { name = "uses-one"; system = "x86_64-linux"; builder = "/bin/sh"; src = one; }) (derivation { name = "uses-two"; system = "x86_64-linux"; builder = "/bin/sh"; src = two; }) ]
