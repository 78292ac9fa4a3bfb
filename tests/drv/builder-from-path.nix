derivation { name = "own-builder"; system = "x86_64-linux"; builder = ./fixtures/builder.sh; }
