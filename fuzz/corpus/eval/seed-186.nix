(derivation { name = "rec"; system = "x86_64-linux"; builder = "/bin/sh"; outputHashMode = "recursive"; outputHashAlgo = "sha1"; outputHash = "3a44e476bebca9bcd352d6998e427b3f4952c87f"; }).outPath
