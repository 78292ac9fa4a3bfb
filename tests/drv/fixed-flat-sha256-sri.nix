derivation { name = "fixed-sri"; system = "x86_64-linux"; builder = "/bin/sh"; outputHash = "sha256-xMBN/Ft7SkodK+sDAH1n6vWAP7Uz02jyPR+s2SiHb7Y="; }
