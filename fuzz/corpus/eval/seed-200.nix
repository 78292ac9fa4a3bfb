(derivation { name = "bad"; system = "s"; builder = "b"; outputHash = "abc"; outputHashAlgo = "sha256"; }).outPath
