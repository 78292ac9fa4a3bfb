derivation { name = "fixed-sha1-b32"; system = "x86_64-linux"; builder = "/bin/sh"; outputHashAlgo = "sha1"; outputHash = "gz454j9zgd18x6fnab9vradwprvf8i1s"; }
