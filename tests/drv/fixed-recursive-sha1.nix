derivation { name = "fixed-rec-sha1"; system = "x86_64-linux"; builder = "/bin/sh"; outputHashMode = "recursive"; outputHashAlgo = "sha1"; outputHash = "gz454j9zgd18x6fnab9vradwprvf8i1s"; }
