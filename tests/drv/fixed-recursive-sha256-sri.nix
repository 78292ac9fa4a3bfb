derivation { name = "fixed-rec"; system = "x86_64-linux"; builder = "/bin/sh"; outputHashMode = "recursive"; outputHash = "sha256-gK49VPCuWpX1o0o0DGCZqGnSDT38e8fm0y5IbsJXVOA="; }
