derivation { name = "odd+name_1.0=x?y-.z"; system = "x86_64-linux"; builder = "/bin/sh"; }
